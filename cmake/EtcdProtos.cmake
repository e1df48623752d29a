# Generates C++ for etcd's v3 API from the .proto files Debian installs (used in place, never copied) into ckv_etcdpb.
#
# Import roots (-I), each a Debian package's Go source tree:
#   /usr/share/gocode/src/go.etcd.io       etcd/etcdserver/etcdserverpb/rpc.proto, etcd/mvcc/mvccpb/kv.proto,
#                                          etcd/auth/authpb/auth.proto, etcd/etcdserver/api/v3lock/v3lockpb/
#                                          v3lock.proto, etcd/etcdserver/api/v3election/
#                                          v3electionpb/v3election.proto (golang-etcd-server-dev); rpc.proto
#                                          imports its siblings as "etcd/...", hence this root
#   .../github.com/gogo/protobuf           gogoproto/gogo.proto (golang-github-gogo-protobuf-dev)
#   .../grpc-gateway/third_party/googleapis google/api/annotations.proto, http.proto
#                                          (golang-github-grpc-ecosystem-grpc-gateway-dev)
# plus protobuf's own include dir for google/protobuf/descriptor.proto.
# Output goes to ${CMAKE_BINARY_DIR}/etcdpb under the same relative paths.

find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_program(CKV_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

set(CKV_GOCODE /usr/share/gocode/src CACHE PATH "Root of Debian's Go source packages holding etcd's .proto files")
set(CKV_ETCD_PROTO_ROOT ${CKV_GOCODE}/go.etcd.io)
set(CKV_GOGO_PROTO_ROOT ${CKV_GOCODE}/github.com/gogo/protobuf)
set(CKV_GOOGLEAPIS_PROTO_ROOT ${CKV_GOCODE}/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis)
set(CKV_ETCDPB_OUT ${CMAKE_BINARY_DIR}/etcdpb)
file(MAKE_DIRECTORY ${CKV_ETCDPB_OUT})

# root;relative path;with gRPC services (ON/OFF)
set(CKV_ETCD_PROTOS
  "${CKV_GOGO_PROTO_ROOT}|gogoproto/gogo.proto|OFF"
  "${CKV_GOOGLEAPIS_PROTO_ROOT}|google/api/http.proto|OFF"
  "${CKV_GOOGLEAPIS_PROTO_ROOT}|google/api/annotations.proto|OFF"
  "${CKV_ETCD_PROTO_ROOT}|etcd/mvcc/mvccpb/kv.proto|OFF"
  "${CKV_ETCD_PROTO_ROOT}|etcd/auth/authpb/auth.proto|OFF"
  "${CKV_ETCD_PROTO_ROOT}|etcd/etcdserver/etcdserverpb/rpc.proto|ON"
  "${CKV_ETCD_PROTO_ROOT}|etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto|ON"
  "${CKV_ETCD_PROTO_ROOT}|etcd/etcdserver/api/v3election/v3electionpb/v3election.proto|ON"
)

set(CKV_ETCDPB_SOURCES)
foreach(entry IN LISTS CKV_ETCD_PROTOS)
  string(REPLACE "|" ";" parts "${entry}")
  list(GET parts 0 root)
  list(GET parts 1 rel)
  list(GET parts 2 with_grpc)
  if(NOT EXISTS ${root}/${rel})
    message(FATAL_ERROR "${root}/${rel} is missing: run scripts/setup.sh (Debian's etcd and gogo/grpc-gateway Go sources)")
  endif()
  string(REGEX REPLACE "\\.proto$" "" stem "${rel}")
  set(outputs ${CKV_ETCDPB_OUT}/${stem}.pb.cc ${CKV_ETCDPB_OUT}/${stem}.pb.h)
  set(grpc_args)
  if(with_grpc)
    list(APPEND outputs ${CKV_ETCDPB_OUT}/${stem}.grpc.pb.cc ${CKV_ETCDPB_OUT}/${stem}.grpc.pb.h)
    set(grpc_args --grpc_out=${CKV_ETCDPB_OUT} --plugin=protoc-gen-grpc=${CKV_GRPC_CPP_PLUGIN})
  endif()
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND protobuf::protoc --cpp_out=${CKV_ETCDPB_OUT} ${grpc_args}
            -I${CKV_ETCD_PROTO_ROOT} -I${CKV_GOGO_PROTO_ROOT} -I${CKV_GOOGLEAPIS_PROTO_ROOT}
            -I${Protobuf_INCLUDE_DIRS} ${rel}
    WORKING_DIRECTORY ${root}
    DEPENDS ${root}/${rel} protobuf::protoc
    COMMENT "protoc ${rel}"
    VERBATIM)
  foreach(o IN LISTS outputs)
    if(o MATCHES "\\.cc$")
      list(APPEND CKV_ETCDPB_SOURCES ${o})
    endif()
  endforeach()
endforeach()

# Built once; generated code gets its own warning flags (it is not ours to fix).
add_library(ckv_etcdpb STATIC ${CKV_ETCDPB_SOURCES})
target_include_directories(ckv_etcdpb SYSTEM PUBLIC ${CKV_ETCDPB_OUT})
target_compile_options(ckv_etcdpb PRIVATE -w -Wno-error)
target_link_libraries(ckv_etcdpb PUBLIC protobuf::libprotobuf gRPC::grpc++)
