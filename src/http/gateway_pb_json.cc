// protobuf's JSON mapping for the /v3/ gateway routes (see gateway_pb_json.h).
#include "http/gateway_pb_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

#include "http/api.h"

namespace ckv::http {

namespace {

namespace pbutil = google::protobuf::util;
using json = nlohmann::json;

// jsonpb's AllowUnknownFields: members no field of d names (by its proto or
// JSON name) are dropped, recursively into message fields. protobuf's own
// ignore_unknown_fields would also turn an unknown enum name into the
// default value, which etcd refuses ("unknown value ... for enum"), so the
// pruned text is then parsed strictly.
void drop_unknown_fields(json& j, const google::protobuf::Descriptor* d) {
  if (!j.is_object()) return;
  for (auto it = j.begin(); it != j.end();) {
    const google::protobuf::FieldDescriptor* f = d->FindFieldByName(it.key());
    for (int i = 0; f == nullptr && i < d->field_count(); ++i) {
      if (d->field(i)->json_name() == it.key()) f = d->field(i);
    }
    if (f == nullptr) {
      it = j.erase(it);
      continue;
    }
    if (f->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
      if (f->is_repeated() && it->is_array()) {
        for (json& e : *it) drop_unknown_fields(e, f->message_type());
      } else {
        drop_unknown_fields(*it, f->message_type());
      }
    }
    ++it;
  }
}

}  // namespace

Status parse_gateway_json(std::string_view body, int max_depth, google::protobuf::Message* out) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return Status::ok();
  if (json_deeper_than(body, max_depth)) {
    return Status(StatusCode::kInvalid,
                  "JSON nested more than " + std::to_string(max_depth) + " levels deep");
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status(StatusCode::kInvalid, "malformed JSON");
  if (!j.is_object()) {
    return Status(StatusCode::kInvalid, "the request body must be a JSON object");
  }
  drop_unknown_fields(j, out->GetDescriptor());
  const auto st = pbutil::JsonStringToMessage(j.dump(), out, pbutil::JsonParseOptions());
  if (!st.ok()) return Status(StatusCode::kInvalid, std::string(st.message()));
  return Status::ok();
}

std::string print_gateway_json(const google::protobuf::Message& m) {
  pbutil::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;      // OrigName: "prev_kv", not "prevKv"
  opts.always_print_primitive_fields = false;  // EmitDefaults false: zero values omitted
  std::string out;
  // Printing a well-formed message cannot fail; an empty body would be the
  // only symptom if it ever did, and the caller sends what it got.
  (void)pbutil::MessageToJsonString(m, &out, opts);
  return out;
}

}  // namespace ckv::http
