/*
 * MQTT (PROTOCOL.md §6) through libmosquitto, as an example_link: frames published QoS 1 to
 * <prefix>/<id>/up, received QoS 1 from <prefix>/<id>/down. A persistent session (clean session
 * off, a client id of its own) so that the broker keeps QoS 1 frames — pushes — while the device
 * is away; reconnects by itself with a backoff, and subscribes again on every connect.
 */
#ifndef EXAMPLE_MQTT_LINK_H
#define EXAMPLE_MQTT_LINK_H

#include <stdbool.h>
#include <mosquitto.h>

#include "../common/link.h"
#include "fb/fb_config.h"

#define MQTT_QUEUE 8 /* frames received in one network read, before the device takes them */
#define CONNACK_WAIT_MS 5000

typedef enum mqtt_state { MQTT_DISCONNECTED, MQTT_CONNECTING, MQTT_CONNECTED } mqtt_state;

typedef struct mqtt_link {
    struct mosquitto *mosq;
    char up[320];
    char down[320];
    mqtt_state state;
    long long connack_by;  /* CONNECTING: when to give up waiting for the CONNACK */
    bool subscribed;       /* the first SUBACK came (QoS 1 granted) */
    unsigned connects;
    long long retry_at;    /* when to try reconnecting (ms, monotonic) */
    long backoff_ms;
    uint8_t queue[MQTT_QUEUE][FB_MAX_FRAME];
    size_t queue_len[MQTT_QUEUE];
    unsigned head, count;
    uint8_t current[FB_MAX_FRAME]; /* the frame handed out by receive, opened in place */
    unsigned dropped;      /* too long, or the queue was full */
} mqtt_link;

/** Connects (waiting up to timeout_ms for the first connection); 0, or -1 with a message on stderr. */
int mqtt_link_open(mqtt_link *m, example_link *link, const char *host, int port, const char *prefix,
                   const char *id, const char *username, const char *password_file, int timeout_ms);
void mqtt_link_close(mqtt_link *m);

#endif
