/* params.c — see params.h. */
#include "api/params.h"

#include <ctype.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "util/crypto.h"

static bool integral_value(json_t *value, double *out) {
  if (json_is_integer(value)) {
    *out = (double)json_integer_value(value);
    return true;
  }
  if (json_is_real(value)) {
    double d = json_real_value(value);
    if (d != floor(d)) return false;
    *out = d;
    return true;
  }
  return false;
}

bool params_uint(api_call_t *call, json_t *object, const char *key, uint32_t min, uint32_t max,
                 uint32_t *out) {
  json_t *value = json_object_get(object, key);
  if (!value || json_is_null(value)) return true;
  double number;
  if (!integral_value(value, &number) || number < min || number > max) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    "Invalid %s: must be an integer from %u to %u", key, min, max);
    return false;
  }
  *out = (uint32_t)number;
  return true;
}

bool params_optional_seconds(api_call_t *call, json_t *object, const char *key, uint32_t max,
                             int64_t *out) {
  json_t *value = json_object_get(object, key);
  if (!value || json_is_null(value)) {
    *out = -1;
    return true;
  }
  uint32_t seconds = 0;
  if (!params_uint(call, object, key, 0, max, &seconds)) return false;
  *out = seconds;
  return true;
}

bool params_bool(api_call_t *call, json_t *object, const char *key, bool *out) {
  json_t *value = json_object_get(object, key);
  if (!value || json_is_null(value)) return true;
  if (!json_is_boolean(value)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Invalid %s: must be true or false", key);
    return false;
  }
  *out = json_is_true(value);
  return true;
}

bool params_string(api_call_t *call, json_t *object, const char *key, const char **out) {
  json_t *value = json_object_get(object, key);
  if (!value || json_is_null(value)) return true;
  if (!json_is_string(value)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Invalid %s: must be a string", key);
    return false;
  }
  *out = json_string_value(value);
  return true;
}

bool params_queue_name(api_call_t *call, const char *name) {
  size_t len = strlen(name);
  bool ok = len >= 1 && len <= 63 && isalnum((unsigned char)name[0]) &&
            isalnum((unsigned char)name[len - 1]);
  for (size_t i = 0; ok && i < len; i++)
    ok = isalnum((unsigned char)name[i]) || name[i] == '-';
  if (!ok)
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    "Invalid queue name \"%.80s\": use 1-63 letters, digits and dashes, "
                    "starting and ending with a letter or digit",
                    name);
  return ok;
}

static void percent_decode(const char *in, size_t len, char *out, size_t out_size) {
  size_t n = 0;
  for (size_t i = 0; i < len && n + 1 < out_size; i++) {
    uint8_t byte;
    if (in[i] == '%' && i + 2 < len && crypto_hex_decode(in + i + 1, 1, &byte)) {
      out[n++] = (char)byte;
      i += 2;
    } else {
      out[n++] = in[i] == '+' ? ' ' : in[i];
    }
  }
  out[n] = '\0';
}

bool params_query_value(const char *query, const char *key, unsigned index, char *out,
                        size_t out_size) {
  size_t key_len = strlen(key);
  for (const char *p = query; p && *p;) {
    const char *end = strchr(p, '&');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len > key_len && strncmp(p, key, key_len) == 0 && p[key_len] == '=') {
      if (index == 0) {
        percent_decode(p + key_len + 1, len - key_len - 1, out, out_size);
        return true;
      }
      index--;
    }
    p = end ? end + 1 : NULL;
  }
  return false;
}

uint32_t params_query_uint(const char *query, const char *key, uint32_t fallback, uint32_t max) {
  char text[32];
  if (!params_query_value(query, key, 0, text, sizeof text)) return fallback;
  char *end;
  unsigned long value = strtoul(text, &end, 10);
  if (*end || value == 0) return fallback;
  return value > max ? max : (uint32_t)value;
}
