/* cobs.h - Consistent Overhead Byte Stuffing (Cheshire & Baker 1999).
 * The encoded form has no 0x00 byte, so 0x00 can delimit frames on the wire. */
#ifndef CART_COBS_H
#define CART_COBS_H

#include <stddef.h>
#include <stdint.h>

/* Worst-case encoded size of len bytes (one code byte per 254 data bytes, plus one). */
#define COBS_MAX_ENCODED(len) ((len) + (len) / 254u + 1u)

/* Encode len bytes of src into dst (capacity COBS_MAX_ENCODED(len)); returns the encoded length.
 * No delimiter is written. */
size_t cobs_encode(const uint8_t *src, size_t len, uint8_t *dst);

/* Decode len encoded bytes (no delimiter) into dst of capacity cap. Returns the decoded length,
 * or -1 if the block is not valid COBS (a zero byte, a code past the end, or dst too small). */
long cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap);

#endif
