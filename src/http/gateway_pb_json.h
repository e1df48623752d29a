// protobuf's JSON mapping as etcd 3.4's grpc-gateway applies it: one parser and one printer for every /v3/ route.
//
// As runtime.JSONPb{OrigName: true} over golang/protobuf's jsonpb: original
// field names ("prev_kv", "ID"), fields at their zero value omitted, bytes as
// base64, 64-bit integers as strings on output; on input unknown members are
// ignored (recursively) and an empty body is the empty message.
//
// Only a forward declaration of google::protobuf::Message here, so the
// gateway's headers stay free of protobuf; the .cc files that include this
// already compile the generated messages they pass in.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace google::protobuf {
class Message;
}

namespace ckv::http {

// Parses body into out (which starts empty). kInvalid with the reason for a
// body nested deeper than max_depth JSON levels (checked before any parser
// runs), malformed JSON, a non-object, or what protobuf's strict parser
// refuses (an unknown enum name, a wrong type).
Status parse_gateway_json(std::string_view body, int max_depth, google::protobuf::Message* out);

// The message as etcd's gateway prints it.
std::string print_gateway_json(const google::protobuf::Message& m);

}  // namespace ckv::http
