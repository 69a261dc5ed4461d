/*
 * The examples' command line (CLI.md "firmware-bridge examples"): device-sim's identity flags and
 * actions, so that scripts can use either.
 *   posix-serial-device --id ID --key HEX [--suite S] --serial PATH --state FILE ACTION
 *   posix-mqtt-device   --id ID --key HEX [--suite S] --mqtt mqtt://HOST:PORT
 *                       [--mqtt-username U --mqtt-password-file F] [--prefix P] --state FILE ACTION
 *   ACTION: get --uid U | allocate --uid U --count N [--repeat N] | lease --uid U
 *         | listen [--pushes N] [--seconds S]
 *         | tape --uid U --bytes N --chunk N   (get the key, then per chunk: allocate, encrypt)
 *         | get-verified --uid U --mac-uid M (--mac-key HEX | --mac-key-file F)
 *                                    (end-to-end nonce-MAC, PROTOCOL.md §5.1, verified here)
 *   common: [--timeout SECONDS] (per request, default 30) [--resend-ms MS] (default 3000)
 */
#ifndef EXAMPLE_OPTIONS_H
#define EXAMPLE_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

typedef enum example_transport { TRANSPORT_SERIAL, TRANSPORT_MQTT } example_transport;
typedef enum example_action { ACTION_GET, ACTION_ALLOCATE, ACTION_LEASE, ACTION_LISTEN, ACTION_TAPE, ACTION_GET_VERIFIED } example_action;

typedef struct example_options {
    const char *id;
    uint8_t key[32];
    uint8_t suite;
    const char *state;
    /* serial */
    const char *serial;
    long baud;
    /* MQTT */
    const char *mqtt_host;
    int mqtt_port;
    const char *mqtt_username;
    const char *mqtt_password_file;
    const char *prefix;
    /* the action */
    example_action action;
    const char *action_name;
    const char *uid;
    int64_t count;
    long repeat;
    long pushes;
    double seconds;
    int64_t tape_bytes;
    int64_t chunk;
    const char *mac_uid;
    uint8_t mac_key[64]; /* the nonce-MAC key M (HMAC-SHA256), provisioned on the device */
    size_t mac_key_len;
    double timeout;
    long resend_ms;
    uint32_t counter_block;
} example_options;

/**
 * Parses argv for `transport`; on a mistake prints one line naming it and the fix to stderr and
 * returns 2 (CLI.md: exit 2, bad usage); 1 after printing --help (exit 0); 0 when fine. Clears
 * the key arguments in argv.
 */
int options_parse(int argc, char **argv, example_transport transport, example_options *options);

#endif
