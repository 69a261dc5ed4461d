/**
 * @file fb_status.h
 * Status codes of every firmware-bridge function, and the two helpers every part shares
 * (zeroize, constant-time compare). No function of the library uses errno or returns anything
 * but an fb_status; results go through out-parameters.
 */
#ifndef FB_STATUS_H
#define FB_STATUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Result of a firmware-bridge call. FB_OK is 0; every error is negative. */
typedef enum fb_status {
    FB_OK = 0,
    /** SLIP decoder: the bytes fed so far complete no packet yet (not an error). */
    FB_AGAIN = 1,
    /** A caller mistake: NULL pointer, bad length, a device id outside [A-Za-z0-9._-]{1,64}, ... */
    FB_ERR_ARG = -1,
    /** The result does not fit the caller's buffer, or a frame would exceed its limit (§2). */
    FB_ERR_TOO_LARGE = -2,
    /** Bytes from the wire that are not a well-formed frame header, SLIP packet or TTLV item. */
    FB_ERR_MALFORMED = -3,
    /** A frame of another protocol version (PROTOCOL.md §7). */
    FB_ERR_VERSION = -4,
    /** A frame of another suite than the device's (§1). */
    FB_ERR_SUITE = -5,
    /** The AEAD tag does not verify: wrong key, tampered, truncated (§4: drop silently). */
    FB_ERR_AUTH = -6,
    /** A push counter not above the last push accepted, or a down counter already seen (§3, §5.2). */
    FB_ERR_REPLAY = -7,
    /** Authentic or well-formed but not for us: another device id, wrong direction, a reply to
     *  nothing in flight (§4: ignore it). */
    FB_ERR_UNEXPECTED = -8,
    /** FB_MAX_IN_FLIGHT requests are already waiting for a reply (§3). */
    FB_ERR_BUSY = -9,
    /** The up counter reached 2^64-1: the device needs a new key (§3: counters are never reused). */
    FB_ERR_COUNTER_EXHAUSTED = -10,
    /** The storage interface failed, or the stored counter state is corrupt (CRC): the device
     *  must not send, since it cannot know which counters were used. */
    FB_ERR_STORAGE = -11,
    /** The crypto backend failed for another reason than a bad tag (not initialized, no key). */
    FB_ERR_CRYPTO = -12,
    /** SLIP: a packet whose CRC-32 does not match (§6); dropped. */
    FB_ERR_CRC = -13,
    /** Nonce-MAC: the HMAC-SHA256 over the Key Value does not verify (§5.1): discard the key. */
    FB_ERR_MAC = -14,
    /** Nonce-MAC: the HMAC verifies but the wrapped x-Nonce is not the nonce just set (§5.1). */
    FB_ERR_NONCE = -15,
    /** A TTLV field the operation needs is absent (or a Get carries no key material). */
    FB_ERR_NOT_FOUND = -16
} fb_status;

/** A short constant name for a status ("FB_ERR_AUTH"), for logs. Never NULL. */
const char *fb_status_name(fb_status status);

/** Overwrites `len` bytes at `p` with zeros in a way the compiler may not drop. NULL is a no-op. */
void fb_zeroize(void *p, size_t len);

/** 1 when the `len` bytes at a and b are equal, else 0; time depends on `len` only. */
int fb_ct_equal(const uint8_t *a, const uint8_t *b, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* FB_STATUS_H */
