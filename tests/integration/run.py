"""Runs one integration test module against a kvnode binary: run.py --kvnode PATH MODULE [unittest args]."""

import argparse
import os
import sys
import unittest

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvnode", required=True)
    ap.add_argument("module")
    args, rest = ap.parse_known_args()
    os.environ["KVNODE"] = os.path.abspath(args.kvnode)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import kvcluster

    kvcluster.KVNODE = os.environ["KVNODE"]
    suite = unittest.defaultTestLoader.loadTestsFromNames([args.module + n for n in (rest or [""])])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)
