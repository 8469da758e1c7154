/* cobs.c - COBS encoder and decoder (see cobs.h). */
#include "cobs.h"

size_t cobs_encode(const uint8_t *src, size_t len, uint8_t *dst)
{
    size_t read = 0, write = 1, code_at = 0;
    uint8_t code = 1;
    while (read < len) {
        if (src[read] == 0u) {
            dst[code_at] = code;
            code = 1;
            code_at = write++;
            read++;
        } else {
            dst[write++] = src[read++];
            code++;
            if (code == 0xFFu) {
                dst[code_at] = code;
                code = 1;
                code_at = write;
                if (read < len) {
                    write++;
                } else {
                    return write; /* a full block ends the data: no trailing code */
                }
            }
        }
    }
    dst[code_at] = code;
    return write;
}

long cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    size_t read = 0, write = 0;
    while (read < len) {
        uint8_t code = src[read];
        size_t i;
        if (code == 0u || read + code > len) {
            return -1;
        }
        read++;
        for (i = 1; i < code; i++) {
            if (src[read] == 0u || write >= cap) {
                return -1;
            }
            dst[write++] = src[read++];
        }
        if (code != 0xFFu && read < len) {
            if (write >= cap) {
                return -1;
            }
            dst[write++] = 0u;
        }
    }
    return (long)write;
}
