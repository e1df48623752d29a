// A stand-in for the reference program (../shared/seed: HashiCorp Raft and BoltDB behind /set /get /delete /join /status), built only to benchmark against.
//
// The reference itself cannot be fetched here (its build downloads Go
// modules), so bench/write_bench.py measures this twin instead: the same
// libraries from Debian (hashicorp/raft 1.1, raft-boltdb, boltdb/bolt), the
// same flags and endpoints, the same way of applying a write (raft.Apply on
// the leader, a JSON command to an in-memory map behind a RWMutex). Followers
// answer writes 503 instead of proxying them: the benchmark writes to the
// leader only. It is not part of consensuskv and is not tested as such.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"
)

type command struct {
	Op    string `json:"op"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// store is the state machine: a map behind a RWMutex, as the reference's.
type store struct {
	mu sync.RWMutex
	m  map[string]string
}

func (s *store) Apply(l *raft.Log) interface{} {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch c.Op {
	case "set":
		s.m[c.Key] = c.Value
	case "delete":
		delete(s.m, c.Key)
	}
	return nil
}

type snapshot struct{ data []byte }

func (p *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(p.data); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (p *snapshot) Release() {}

func (s *store) Snapshot() (raft.FSMSnapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	data, err := json.Marshal(s.m)
	return &snapshot{data}, err
}

func (s *store) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	m := map[string]string{}
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return err
	}
	s.mu.Lock()
	s.m = m
	s.mu.Unlock()
	return nil
}

func main() {
	raftAddr := flag.String("raft-address", "127.0.0.1:5000", "Raft bind address")
	apiAddr := flag.String("api-address", "127.0.0.1:8000", "HTTP API address")
	dataDir := flag.String("data-dir", "./data", "data directory")
	bootstrap := flag.Bool("bootstrap", false, "bootstrap a new cluster")
	flag.Parse()
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		log.Fatal(err)
	}
	fsm := &store{m: map[string]string{}}
	config := raft.DefaultConfig()
	config.LocalID = raft.ServerID(*raftAddr)
	addr, err := net.ResolveTCPAddr("tcp", *raftAddr)
	if err != nil {
		log.Fatal(err)
	}
	transport, err := raft.NewTCPTransport(*raftAddr, addr, 3, 10*time.Second, os.Stderr)
	if err != nil {
		log.Fatal(err)
	}
	snapshots, err := raft.NewFileSnapshotStore(*dataDir, 2, os.Stderr)
	if err != nil {
		log.Fatal(err)
	}
	bolt, err := raftboltdb.NewBoltStore(filepath.Join(*dataDir, "raft.db"))
	if err != nil {
		log.Fatal(err)
	}
	r, err := raft.NewRaft(config, fsm, bolt, bolt, snapshots, transport)
	if err != nil {
		log.Fatal(err)
	}
	if *bootstrap {
		r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: config.LocalID, Address: transport.LocalAddr()}}})
	}

	apply := func(w http.ResponseWriter, req *http.Request, op string) {
		var c command
		if err := json.NewDecoder(req.Body).Decode(&c); err != nil || c.Key == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if r.State() != raft.Leader {
			http.Error(w, "not the leader", http.StatusServiceUnavailable)
			return
		}
		c.Op = op
		data, _ := json.Marshal(c)
		if err := r.Apply(data, 10*time.Second).Error(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	http.HandleFunc("/set", func(w http.ResponseWriter, req *http.Request) { apply(w, req, "set") })
	http.HandleFunc("/delete", func(w http.ResponseWriter, req *http.Request) { apply(w, req, "delete") })
	http.HandleFunc("/get", func(w http.ResponseWriter, req *http.Request) {
		key := req.URL.Query().Get("key")
		fsm.mu.RLock()
		v, ok := fsm.m[key]
		fsm.mu.RUnlock()
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"key": key, "value": v})
	})
	http.HandleFunc("/join", func(w http.ResponseWriter, req *http.Request) {
		peer := req.URL.Query().Get("peerAddress")
		if peer == "" {
			http.Error(w, "peerAddress is required", http.StatusBadRequest)
			return
		}
		if err := r.AddVoter(raft.ServerID(peer), raft.ServerAddress(peer), 0, 0).Error(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "joined %s\n", peer)
	})
	http.HandleFunc("/status", func(w http.ResponseWriter, req *http.Request) {
		voters := 0
		if f := r.GetConfiguration(); f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				if s.Suffrage == raft.Voter {
					voters++
				}
			}
		}
		json.NewEncoder(w).Encode(map[string]interface{}{
			"isLeader": r.State() == raft.Leader, "leader": string(r.Leader()), "voters": voters,
		})
	})
	log.Fatal(http.ListenAndServe(*apiAddr, nil))
}
