/**
 * @file fb.h
 * firmware-bridge: the device side of the kmip-edge device protocol v1 (PROTOCOL.md).
 * One header per part; this one includes the core parts (not the PSA backend).
 */
#ifndef FB_H
#define FB_H
#include "fb_config.h"
#include "fb_status.h"
#include "fb_crypto.h"
#include "fb_frame.h"
#include "fb_slip.h"
#include "fb_counter.h"
#include "fb_ttlv.h"
#include "fb_kmip.h"
#include "fb_device.h"
#endif /* FB_H */
