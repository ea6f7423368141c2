/*
 * Test entry points of wire.c through the ring_plane addon, for wire-check.ts (which compares them
 * with src/collective/frame-codec.ts and the generated protobuf code). `fields` is a ChunkHeader
 * object (runId, generation, ..., dtype); `payloadBytes` defaults to 4 * length (float32).
 *   encodeChunkHeader(fields, payloadBytes?) -> Buffer   prefix + header, the payload follows
 *   classify(message, fields, payloadBytes?) -> 'match' | 'other'
 *   payloadAt(message, fields, payloadBytes?) -> offset of the payload in message, -1 if 'other'
 *   prefix(fiveBytes) -> message length, 0 for the orderly close, -1 for a nonzero flag
 */
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static const char *const NAMES[WIRE_NFIELDS] = {
    "generation", "senderRank", "sequence",   "epoch",  "step",   "phase",       "phaseStep",
    "segment",    "chunkIndex", "offset",     "length", "totalLength", "dtype",
};

/* A uint32 property or argument; throws and returns -1 otherwise. */
static int get_u32(napi_env env, napi_value v, const char *what, double max, double *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= max) || d != (double)(uint64_t)d) {
    char msg[120];
    snprintf(msg, sizeof msg, "wire: %s must be an integer in [0, %.0f]", what, max);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  *out = d;
  return 0;
}

/* Reads fields (and the optional payload bytes at argv[i]) into *h; run id malloc'd into *id. */
static int get_chunk(napi_env env, napi_value obj, napi_value pb, wire_chunk *h, uint8_t **id,
                     uint64_t *payload_bytes) {
  napi_value v;
  size_t n = 0;
  *id = NULL;
  if (napi_get_named_property(env, obj, "runId", &v) != napi_ok ||
      napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "wire: fields.runId must be a string");
    return -1;
  }
  *id = malloc(n + 1);
  napi_get_value_string_utf8(env, v, (char *)*id, n + 1, &n);
  h->run_id = *id;
  h->run_id_len = n;
  for (int i = 0; i < WIRE_NFIELDS; i++) {
    double d;
    if (napi_get_named_property(env, obj, NAMES[i], &v) != napi_ok ||
        get_u32(env, v, NAMES[i], 4294967295.0, &d) != 0)
      return -1;
    h->v[i] = (uint32_t)d;
  }
  napi_valuetype t = napi_undefined;
  if (pb) napi_typeof(env, pb, &t);
  if (t == napi_undefined) {
    *payload_bytes = 4 * (uint64_t)h->v[WIRE_LENGTH];
    return 0;
  }
  double d;
  if (get_u32(env, pb, "payloadBytes", 4294967295.0, &d) != 0) return -1;
  *payload_bytes = (uint64_t)d;
  return 0;
}

static napi_value header(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  wire_chunk h;
  uint8_t *id;
  uint64_t pb;
  if (get_chunk(env, argv[0], argc > 1 ? argv[1] : NULL, &h, &id, &pb) == 0) {
    uint8_t *buf = malloc(WIRE_HEADER_MAX(h.run_id_len));
    size_t k = wire_encode_header(&h, pb, buf, WIRE_HEADER_MAX(h.run_id_len));
    void *data;
    if (k == 0)
      napi_throw_range_error(env, NULL, "wire: no chunk message for these payload bytes (0, or > 2^32 - 1 in all)");
    else if (napi_create_buffer_copy(env, k, buf, &data, &out) != napi_ok)
      napi_throw_error(env, NULL, "wire: cannot create a Buffer");
    free(buf);
  }
  free(id);
  return out;
}

/* Shared by classify and payloadAt: 1 match, 0 other, -1 thrown. */
static int classify_args(napi_env env, napi_callback_info info, size_t *at) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *msg;
  size_t len;
  if (argc < 2 || napi_get_buffer_info(env, argv[0], &msg, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "wire: classify(message: Buffer, fields, payloadBytes?)");
    return -1;
  }
  wire_chunk h;
  uint8_t *id;
  uint64_t pb;
  int rc = -1;
  if (get_chunk(env, argv[1], argc > 2 ? argv[2] : NULL, &h, &id, &pb) == 0)
    rc = wire_classify(msg, len, &h, pb, at) == WIRE_MATCH;
  free(id);
  return rc;
}

static napi_value classify(napi_env env, napi_callback_info info) {
  size_t at;
  int rc = classify_args(env, info, &at);
  napi_value out = NULL;
  if (rc >= 0) napi_create_string_utf8(env, rc ? "match" : "other", NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value payload_at(napi_env env, napi_callback_info info) {
  size_t at;
  int rc = classify_args(env, info, &at);
  napi_value out = NULL;
  if (rc >= 0) napi_create_double(env, rc ? (double)at : -1, &out);
  return out;
}

static napi_value prefix(napi_env env, napi_callback_info info) {
  size_t argc = 1, len;
  napi_value argv[1], out = NULL;
  void *b;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_buffer_info(env, argv[0], &b, &len) != napi_ok || len != WIRE_PREFIX) {
    napi_throw_type_error(env, NULL, "wire: prefix wants a Buffer of 5 bytes");
    return NULL;
  }
  uint32_t n;
  int k = wire_prefix(b, &n);
  napi_create_double(env, k < 0 ? -1 : (double)n, &out);
  return out;
}

/* Adds the entry points above to the addon's exports (called from ring_plane.c's init). */
void wire_napi_define(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
      {"encodeChunkHeader", NULL, header, NULL, NULL, NULL, napi_default, NULL},
      {"classify", NULL, classify, NULL, NULL, NULL, napi_default, NULL},
      {"payloadAt", NULL, payload_at, NULL, NULL, NULL, napi_default, NULL},
      {"prefix", NULL, prefix, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
}
