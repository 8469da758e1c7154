/* crc32.h - CRC-32/ISO-HDLC (IEEE 802.3, the zlib CRC): reflected poly 0xEDB88320, init and
 * final XOR 0xFFFFFFFF. Table-driven, one table lookup per byte. crc32("123456789") = 0xCBF43926. */
#ifndef CART_CRC32_H
#define CART_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0 and feed the bytes in any number of pieces. */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len);
uint32_t crc32(const uint8_t *data, size_t len);

#endif
