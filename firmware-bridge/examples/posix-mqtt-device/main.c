/*
 * posix-mqtt-device: a device on MQTT (CLI.md "firmware-bridge examples").
 *   posix-mqtt-device --id ID --key HEX [--suite S] --mqtt mqtt://HOST:PORT
 *                     [--mqtt-username U --mqtt-password-file F] [--prefix P] --state FILE ACTION
 * libmosquitto, QoS 1 both ways, reconnecting by itself (mqtt_link.c); everything else is
 * common/device_app.c.
 */
#include <stdio.h>

#include "../common/device_app.h"
#include "../common/options.h"
#include "mqtt_link.h"

int main(int argc, char **argv) {
    static example_options options;
    static mqtt_link mqtt;
    example_link link;
    setvbuf(stdout, NULL, _IOLBF, 0); /* one JSON line per request, as it completes */
    int bad = options_parse(argc, argv, TRANSPORT_MQTT, &options);
    if (bad) return bad;
    if (mqtt_link_open(&mqtt, &link, options.mqtt_host, options.mqtt_port, options.prefix, options.id,
                       options.mqtt_username, options.mqtt_password_file, (int)(options.timeout * 1000.0)) != 0) {
        return 1;
    }
    int status = device_app_run(&options, &link, "posix-mqtt-device");
    mqtt_link_close(&mqtt);
    return status;
}
