#define _POSIX_C_SOURCE 200809L
#include "mqtt_link.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void disconnected(mqtt_link *m);

static void on_connect(struct mosquitto *mosq, void *ctx, int rc) {
    mqtt_link *m = ctx;
    if (rc != 0) {
        fprintf(stderr, "posix-mqtt-device: the broker refused the connection: %s\n", mosquitto_connack_string(rc));
        disconnected(m);
        return;
    }
    m->state = MQTT_CONNECTED;
    m->connects++;
    m->backoff_ms = 250;
    if (m->connects > 1) fprintf(stderr, "posix-mqtt-device: reconnected to the broker\n");
    /* Every connect: a broker that lost the session (restarted without persistence) forgot it. */
    if (mosquitto_subscribe(mosq, NULL, m->down, 1) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "posix-mqtt-device: cannot subscribe to %s\n", m->down);
    }
}

static void on_subscribe(struct mosquitto *mosq, void *ctx, int mid, int count, const int *granted) {
    (void)mosq;
    (void)mid;
    mqtt_link *m = ctx;
    if (count == 1 && granted[0] == 1) m->subscribed = true;
    else fprintf(stderr, "posix-mqtt-device: the broker did not grant QoS 1 on %s\n", m->down);
}

static void on_disconnect(struct mosquitto *mosq, void *ctx, int rc) {
    (void)mosq;
    mqtt_link *m = ctx;
    if (rc != 0 && m->state == MQTT_CONNECTED) fprintf(stderr, "posix-mqtt-device: lost the broker (%s); reconnecting\n", mosquitto_strerror(rc));
    disconnected(m);
}

static void on_message(struct mosquitto *mosq, void *ctx, const struct mosquitto_message *message) {
    (void)mosq;
    mqtt_link *m = ctx;
    if (strcmp(message->topic, m->down) != 0) return;
    if (message->payloadlen <= 0 || (size_t)message->payloadlen > FB_MAX_FRAME || m->count == MQTT_QUEUE) {
        m->dropped++; /* longer than any frame (checked before copying), or no room */
        return;
    }
    unsigned slot = (m->head + m->count) % MQTT_QUEUE;
    memcpy(m->queue[slot], message->payload, (size_t)message->payloadlen);
    m->queue_len[slot] = (size_t)message->payloadlen;
    m->count++;
}

/** Sleeps `ms` milliseconds (when there is no socket to wait on). */
static void pause_ms(long long ms) {
    if (ms <= 0) return;
    struct timespec pause = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    nanosleep(&pause, NULL);
}

/** Lost or refused: try again after the backoff (250 ms doubling to 5 s). */
static void disconnected(mqtt_link *m) {
    m->state = MQTT_DISCONNECTED;
    m->retry_at = now_ms() + m->backoff_ms;
    if (m->backoff_ms < 5000) m->backoff_ms *= 2;
}

/**
 * One round of network work for up to `ms`: reconnects when the time has come (a CONNECT then
 * gets CONNACK_WAIT_MS for its CONNACK), else reads and writes what is due (mosquitto_loop).
 */
static void pump(mqtt_link *m, int ms) {
    long long now = now_ms();
    if (m->state == MQTT_DISCONNECTED) {
        if (now < m->retry_at) {
            pause_ms(m->retry_at - now < ms ? m->retry_at - now : ms);
            return;
        }
        if (mosquitto_reconnect(m->mosq) != MOSQ_ERR_SUCCESS) {
            disconnected(m);
            return;
        }
        m->state = MQTT_CONNECTING;
        m->connack_by = now + CONNACK_WAIT_MS;
    }
    if (m->state == MQTT_CONNECTING && now > m->connack_by) {
        fprintf(stderr, "posix-mqtt-device: no CONNACK from the broker; reconnecting\n");
        disconnected(m);
        return;
    }
    int rc = mosquitto_loop(m->mosq, ms, 1);
    if (rc != MOSQ_ERR_SUCCESS && m->state != MQTT_DISCONNECTED) {
        if (m->state == MQTT_CONNECTED) fprintf(stderr, "posix-mqtt-device: lost the broker (%s); reconnecting\n", mosquitto_strerror(rc));
        disconnected(m);
    }
}

static int mqtt_send(void *ctx, const uint8_t *frame, size_t len) {
    mqtt_link *m = ctx;
    if (m->state != MQTT_CONNECTED) return -1; /* resent by the request loop once connected */
    int rc = mosquitto_publish(m->mosq, NULL, m->up, (int)len, frame, 1, false);
    if (rc != MOSQ_ERR_SUCCESS) return -1;
    pump(m, 0); /* let it leave now */
    return 0;
}

static int mqtt_receive(void *ctx, uint8_t **frame, size_t *len, int timeout_ms) {
    mqtt_link *m = ctx;
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        if (m->count > 0) {
            size_t n = m->queue_len[m->head];
            memcpy(m->current, m->queue[m->head], n);
            m->head = (m->head + 1) % MQTT_QUEUE;
            m->count--;
            *frame = m->current;
            *len = n;
            return 1;
        }
        long long left = deadline - now_ms();
        if (left < 0) return 0;
        pump(m, left > 100 ? 100 : (int)left);
    }
}

int mqtt_link_open(mqtt_link *m, example_link *link, const char *host, int port, const char *prefix,
                   const char *id, const char *username, const char *password_file, int timeout_ms) {
    char client_id[96];
    memset(m, 0, sizeof *m);
    snprintf(m->up, sizeof m->up, "%s/%s/up", prefix, id);
    snprintf(m->down, sizeof m->down, "%s/%s/down", prefix, id);
    snprintf(client_id, sizeof client_id, "fb-%s", id);
    mosquitto_lib_init();
    m->mosq = mosquitto_new(client_id, false, m);
    if (m->mosq == NULL) {
        fprintf(stderr, "posix-mqtt-device: cannot create the MQTT client\n");
        return -1;
    }
    if (username != NULL) {
        char password[256];
        FILE *f = fopen(password_file, "r");
        size_t n = f ? fread(password, 1, sizeof password - 1, f) : 0;
        if (f) fclose(f);
        if (f == NULL) {
            fprintf(stderr, "posix-mqtt-device: cannot read --mqtt-password-file %s\n", password_file);
            return -1;
        }
        while (n > 0 && (password[n - 1] == '\n' || password[n - 1] == '\r')) n--;
        password[n] = '\0';
        int rc = mosquitto_username_pw_set(m->mosq, username, password);
        memset(password, 0, sizeof password);
        if (rc != MOSQ_ERR_SUCCESS) return -1;
    }
    mosquitto_connect_callback_set(m->mosq, on_connect);
    mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
    mosquitto_message_callback_set(m->mosq, on_message);
    mosquitto_subscribe_callback_set(m->mosq, on_subscribe);
    m->backoff_ms = 250;
    long long deadline = now_ms() + timeout_ms;
    int rc = mosquitto_connect(m->mosq, host, port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "posix-mqtt-device: cannot reach the broker at %s:%d (%s); retrying\n", host, port, mosquitto_strerror(rc));
        disconnected(m);
    } else {
        m->state = MQTT_CONNECTING;
        m->connack_by = now_ms() + CONNACK_WAIT_MS;
    }
    /* Ready once subscribed: a reply published before the broker has our subscription is lost. */
    while (!m->subscribed && now_ms() < deadline) pump(m, 100);
    if (!m->subscribed) {
        fprintf(stderr, "posix-mqtt-device: no connection to the broker at %s:%d within %d ms\n", host, port, timeout_ms);
        return -1;
    }
    link->ctx = m;
    link->send = mqtt_send;
    link->receive = mqtt_receive;
    return 0;
}

void mqtt_link_close(mqtt_link *m) {
    if (m->mosq != NULL) {
        mosquitto_disconnect(m->mosq);
        mosquitto_loop(m->mosq, 100, 1);
        mosquitto_destroy(m->mosq);
        m->mosq = NULL;
    }
    mosquitto_lib_cleanup();
}
