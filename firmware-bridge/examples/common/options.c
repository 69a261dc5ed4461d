#define _POSIX_C_SOURCE 200809L
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb/fb_crypto.h"

static int usage(const char *program, const char *line) {
    fprintf(stderr, "%s: %s\n", program, line);
    return 2;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/** 64 hex digits into 32 bytes; 0 when well formed. */
static int parse_key(const char *hex, uint8_t key[32]) {
    if (strlen(hex) != 64) return -1;
    for (size_t i = 0; i < 32; i++) {
        int hi = hex_digit(hex[2 * i]);
        int lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        key[i] = (uint8_t)(hi * 16 + lo);
    }
    return 0;
}

/** 32 to 64 bytes of hex (an HMAC-SHA256 key) into `out`; 0 when well formed. */
static int parse_mac_key(const char *hex, uint8_t out[64], size_t *len) {
    size_t n = strlen(hex);
    if (n % 2 != 0 || n < 64 || n > 128) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(hex[2 * i]);
        int lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    *len = n / 2;
    return 0;
}

/** A whole number in [min, max]; 0 when it is one. */
static int parse_integer(const char *text, int64_t min, int64_t max, int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) return -1;
    *out = (int64_t)value;
    return 0;
}

int options_parse(int argc, char **argv, example_transport transport, example_options *o) {
    const char *program = transport == TRANSPORT_SERIAL ? "posix-serial-device" : "posix-mqtt-device";
    const char *suite = "aes-256-gcm";
    const char *mqtt = NULL;
    const char *key_hex = NULL;
    const char *key_file = NULL;
    const char *mac_key_hex = NULL;
    const char *mac_key_file = NULL;
    char mac_text[160];
    const char *count = NULL, *repeat = "1", *pushes = "1", *seconds = "30", *bytes = NULL, *chunk = NULL;
    const char *timeout = "30", *resend = "3000", *baud = "115200", *block = "0";
    int64_t value = 0;
    char key_text[80];

    memset(o, 0, sizeof *o);
    o->prefix = "kmip-edge";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            printf("usage: %s --id ID (--key HEX | --key-file F) [--suite aes-256-gcm|chacha20-poly1305] --state FILE\n"
                   "       %s\n"
                   "       [--timeout SECONDS] [--resend-ms MS] [--counter-block N] ACTION\n"
                   "ACTION: get --uid U [--repeat N] | allocate --uid U --count N [--repeat N] | lease --uid U\n"
                   "      | listen [--pushes N] [--seconds S] | tape --uid U --bytes N --chunk N\n"
                   "      | get-verified --uid U --mac-uid M (--mac-key HEX | --mac-key-file F)\n"
                   "One JSON line per completed request on stdout (as kmip-edge device-sim); exit 0 ok, 1 failed, 2 bad usage.\n",
                   program, transport == TRANSPORT_SERIAL ? "--serial PATH [--baud 115200]" : "--mqtt mqtt://HOST:PORT [--mqtt-username U --mqtt-password-file F] [--prefix P]");
            return 1; /* handled: the caller exits 0 */
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (o->action_name != NULL) return usage(program, "one ACTION only: get, allocate, lease, listen or tape");
            o->action_name = arg;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", program, arg);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(arg, "--id") == 0) o->id = v;
        else if (strcmp(arg, "--key") == 0) {
            key_hex = v;
            if (strlen(v) < sizeof key_text) {
                strcpy(key_text, v);
                key_hex = key_text;
                memset(argv[i], 'x', strlen(argv[i])); /* best effort: not left in /proc/PID/cmdline */
            }
        }
        else if (strcmp(arg, "--key-file") == 0) key_file = v;
        else if (strcmp(arg, "--mac-uid") == 0) o->mac_uid = v;
        else if (strcmp(arg, "--mac-key") == 0) {
            mac_key_hex = v;
            if (strlen(v) < sizeof mac_text) {
                strcpy(mac_text, v);
                mac_key_hex = mac_text;
                memset(argv[i], 'x', strlen(argv[i]));
            }
        }
        else if (strcmp(arg, "--mac-key-file") == 0) mac_key_file = v;
        else if (strcmp(arg, "--suite") == 0) suite = v;
        else if (strcmp(arg, "--state") == 0) o->state = v;
        else if (strcmp(arg, "--uid") == 0) o->uid = v;
        else if (strcmp(arg, "--count") == 0) count = v;
        else if (strcmp(arg, "--repeat") == 0) repeat = v;
        else if (strcmp(arg, "--pushes") == 0) pushes = v;
        else if (strcmp(arg, "--seconds") == 0) seconds = v;
        else if (strcmp(arg, "--bytes") == 0) bytes = v;
        else if (strcmp(arg, "--chunk") == 0) chunk = v;
        else if (strcmp(arg, "--timeout") == 0) timeout = v;
        else if (strcmp(arg, "--resend-ms") == 0) resend = v;
        else if (strcmp(arg, "--counter-block") == 0) block = v;
        else if (transport == TRANSPORT_SERIAL && strcmp(arg, "--serial") == 0) o->serial = v;
        else if (transport == TRANSPORT_SERIAL && strcmp(arg, "--baud") == 0) baud = v;
        else if (transport == TRANSPORT_MQTT && strcmp(arg, "--mqtt") == 0) mqtt = v;
        else if (transport == TRANSPORT_MQTT && strcmp(arg, "--mqtt-username") == 0) o->mqtt_username = v;
        else if (transport == TRANSPORT_MQTT && strcmp(arg, "--mqtt-password-file") == 0) o->mqtt_password_file = v;
        else if (transport == TRANSPORT_MQTT && strcmp(arg, "--prefix") == 0) o->prefix = v;
        else {
            fprintf(stderr, "%s: unknown option %s (see CLI.md, firmware-bridge examples)\n", program, arg);
            return 2;
        }
    }

    if (o->id == NULL) return usage(program, "needs --id ID (as given to kmip-edge device add)");
    size_t id_len = strlen(o->id);
    if (id_len < 1 || id_len > 64 || strspn(o->id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != id_len) {
        return usage(program, "--id is 1-64 characters of [A-Za-z0-9._-] (PROTOCOL.md §1)");
    }
    if ((key_hex == NULL) == (key_file == NULL)) return usage(program, "needs --key HEX or --key-file F (the device key kmip-edge device add printed)");
    if (key_file != NULL) {
        FILE *f = fopen(key_file, "r");
        size_t n = f ? fread(key_text, 1, sizeof key_text - 1, f) : 0;
        if (f) fclose(f);
        if (f == NULL) return usage(program, "--key-file: cannot read the file");
        while (n > 0 && (key_text[n - 1] == '\n' || key_text[n - 1] == '\r' || key_text[n - 1] == ' ')) n--;
        key_text[n] = '\0';
        key_hex = key_text;
    }
    int bad_key = parse_key(key_hex, o->key);
    memset(key_text, 0, sizeof key_text);
    if (bad_key) return usage(program, "--key is 64 hex digits (a 256-bit device key)");
    if (strcmp(suite, "aes-256-gcm") == 0) o->suite = FB_SUITE_AES_256_GCM;
    else if (strcmp(suite, "chacha20-poly1305") == 0) o->suite = FB_SUITE_CHACHA20_POLY1305;
    else return usage(program, "--suite is aes-256-gcm or chacha20-poly1305");
    if (o->state == NULL) return usage(program, "needs --state FILE (the device's counter state, created on first use)");

    if (transport == TRANSPORT_SERIAL) {
        if (o->serial == NULL) return usage(program, "needs --serial PATH (the serial line to the agent, e.g. /dev/ttyUSB0)");
        if (parse_integer(baud, 1200, 4000000, &value)) return usage(program, "--baud is a rate such as 115200");
        o->baud = (long)value;
    } else {
        static char host[256];
        const char *rest;
        if (mqtt == NULL) return usage(program, "needs --mqtt mqtt://HOST:PORT (the broker the agent uses)");
        if (strncmp(mqtt, "mqtt://", 7) != 0) return usage(program, "--mqtt takes mqtt://HOST[:PORT] (this example speaks plain MQTT; TLS would use mosquitto_tls_set)");
        rest = mqtt + 7;
        const char *colon = strrchr(rest, ':');
        size_t host_len = colon ? (size_t)(colon - rest) : strlen(rest);
        while (host_len > 0 && rest[host_len - 1] == '/') host_len--;
        if (host_len == 0 || host_len >= sizeof host) return usage(program, "--mqtt: no host in the URL");
        memcpy(host, rest, host_len);
        host[host_len] = '\0';
        o->mqtt_host = host;
        o->mqtt_port = 1883;
        if (colon) {
            char port[16];
            size_t port_len = strcspn(colon + 1, "/");
            if (port_len == 0 || port_len >= sizeof port) return usage(program, "--mqtt: bad port in the URL");
            memcpy(port, colon + 1, port_len);
            port[port_len] = '\0';
            if (parse_integer(port, 1, 65535, &value)) return usage(program, "--mqtt: bad port in the URL");
            o->mqtt_port = (int)value;
        }
        if ((o->mqtt_username == NULL) != (o->mqtt_password_file == NULL)) return usage(program, "--mqtt-username and --mqtt-password-file go together");
        size_t prefix_len = strlen(o->prefix);
        if (prefix_len == 0 || strpbrk(o->prefix, "+#") != NULL) return usage(program, "--prefix is a topic prefix without wildcards");
    }

    if (o->action_name == NULL) return usage(program, "needs an ACTION: get --uid U | allocate --uid U --count N | lease --uid U | listen | tape --uid U --bytes N --chunk N | get-verified --uid U --mac-uid M --mac-key HEX");
    if (strcmp(o->action_name, "get") == 0) o->action = ACTION_GET;
    else if (strcmp(o->action_name, "allocate") == 0) o->action = ACTION_ALLOCATE;
    else if (strcmp(o->action_name, "lease") == 0) o->action = ACTION_LEASE;
    else if (strcmp(o->action_name, "listen") == 0) o->action = ACTION_LISTEN;
    else if (strcmp(o->action_name, "tape") == 0) o->action = ACTION_TAPE;
    else if (strcmp(o->action_name, "get-verified") == 0) o->action = ACTION_GET_VERIFIED;
    else return usage(program, "ACTION is get, allocate, lease, listen, tape or get-verified");
    if (o->action != ACTION_LISTEN && (o->uid == NULL || o->uid[0] == '\0' || strlen(o->uid) > 256)) {
        fprintf(stderr, "%s: %s needs --uid U (the key's Unique Identifier)\n", program, o->action_name);
        return 2;
    }
    if (o->action == ACTION_ALLOCATE) {
        if (count == NULL || parse_integer(count, 1, INT64_MAX, &o->count)) return usage(program, "allocate needs --count N >= 1");
    }
    if (parse_integer(repeat, 1, 1000000, &value)) return usage(program, "--repeat is 1 to 1000000");
    o->repeat = (long)value;
    if (parse_integer(pushes, 1, 1000000, &value)) return usage(program, "--pushes is 1 to 1000000");
    o->pushes = (long)value;
    if (o->action == ACTION_GET_VERIFIED) {
        if (o->mac_uid == NULL || o->mac_uid[0] == '\0' || strlen(o->mac_uid) > 256) return usage(program, "get-verified needs --mac-uid M (the HMAC-SHA256 key on the key server)");
        if ((mac_key_hex == NULL) == (mac_key_file == NULL)) return usage(program, "get-verified needs --mac-key HEX or --mac-key-file F (M's bytes, provisioned on the device)");
        if (mac_key_file != NULL) {
            FILE *f = fopen(mac_key_file, "r");
            size_t n = f ? fread(mac_text, 1, sizeof mac_text - 1, f) : 0;
            if (f) fclose(f);
            if (f == NULL) return usage(program, "--mac-key-file: cannot read the file");
            while (n > 0 && (mac_text[n - 1] == '\n' || mac_text[n - 1] == '\r' || mac_text[n - 1] == ' ')) n--;
            mac_text[n] = '\0';
            mac_key_hex = mac_text;
        }
        int bad_mac = parse_mac_key(mac_key_hex, o->mac_key, &o->mac_key_len);
        memset(mac_text, 0, sizeof mac_text);
        if (bad_mac) return usage(program, "--mac-key is 64 to 128 hex digits (an HMAC-SHA256 key of 32 to 64 bytes)");
    }
    if (o->action == ACTION_TAPE) {
        if (bytes == NULL || parse_integer(bytes, 1, INT64_MAX, &o->tape_bytes)) return usage(program, "tape needs --bytes N >= 1 (the tape's size)");
        if (chunk == NULL || parse_integer(chunk, 1, 1 << 30, &o->chunk)) return usage(program, "tape needs --chunk N (bytes per usage allocation, 1 to 2^30)");
    }
    char *end = NULL;
    o->seconds = strtod(seconds, &end);
    if (*end != '\0' || !(o->seconds > 0 && o->seconds <= 86400)) return usage(program, "--seconds is in (0, 86400]");
    o->timeout = strtod(timeout, &end);
    if (*end != '\0' || !(o->timeout > 0 && o->timeout <= 86400)) return usage(program, "--timeout is seconds in (0, 86400]");
    if (parse_integer(resend, 10, 600000, &value)) return usage(program, "--resend-ms is 10 to 600000");
    o->resend_ms = (long)value;
    if (parse_integer(block, 0, 1000000, &value)) return usage(program, "--counter-block is 0 (the library's default) to 1000000");
    o->counter_block = (uint32_t)value;
    return 0;
}
