/* proto.c - see proto.h and PROTOCOL.md. */
#include "proto.h"

#include <string.h>

#include "crc32.h"

void proto_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

void proto_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

uint16_t proto_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | ((uint16_t)p[1] << 8));
}

uint32_t proto_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

size_t proto_hello(uint8_t *payload, const proto_hello_t *hello)
{
    unsigned i;
    payload[0] = PROTO_T_HELLO;
    payload[1] = PROTO_VERSION;
    payload[2] = hello->fw_major;
    payload[3] = hello->fw_minor;
    payload[4] = hello->fw_patch;
    payload[5] = hello->n_leads;
    payload[6] = hello->rows_per_frame;
    payload[7] = 0u;
    proto_put_u32(payload + 8, (uint32_t)(hello->device_id & 0xFFFFFFFFu));
    proto_put_u32(payload + 12, (uint32_t)(hello->device_id >> 32));
    proto_put_u32(payload + 16, hello->session_id);
    proto_put_u32(payload + 20, hello->fs_millihz);
    for (i = 0; i < hello->n_leads; i++) {
        uint8_t *entry = payload + PROTO_HELLO_HEAD + i * PROTO_HELLO_LEAD_BYTES;
        uint32_t lsb_bits;
        memcpy(&lsb_bits, &hello->uv_per_lsb[i], 4); /* IEEE-754 binary32, sent little-endian */
        memcpy(entry, hello->lead_names[i], PROTO_LEAD_NAME_BYTES);
        proto_put_u32(entry + PROTO_LEAD_NAME_BYTES, lsb_bits);
    }
    return PROTO_HELLO_HEAD + (size_t)hello->n_leads * PROTO_HELLO_LEAD_BYTES;
}

size_t proto_status(uint8_t *payload, const proto_status_t *status)
{
    payload[0] = PROTO_T_STATUS;
    payload[1] = status->battery_pct;
    proto_put_u16(payload + 2, status->battery_mv);
    proto_put_u32(payload + 4, status->errors);
    proto_put_u32(payload + 8, status->dropped_rows);
    proto_put_u32(payload + 12, status->uptime_ms);
    proto_put_u32(payload + 16, status->rx_bad_frames);
    return PROTO_STATUS_LEN;
}

size_t proto_pong(uint8_t *payload, uint32_t nonce, uint32_t uptime_ms)
{
    payload[0] = PROTO_T_PONG;
    payload[1] = payload[2] = payload[3] = 0u;
    proto_put_u32(payload + 4, nonce);
    proto_put_u32(payload + 8, uptime_ms);
    return PROTO_PONG_LEN;
}

size_t proto_command(uint8_t *payload, uint8_t kind, uint32_t nonce)
{
    payload[0] = kind;
    if (kind != PROTO_T_PING) {
        return 1u;
    }
    payload[1] = payload[2] = payload[3] = 0u;
    proto_put_u32(payload + 4, nonce);
    return PROTO_PING_LEN;
}

size_t proto_samples_begin(uint8_t *payload, uint32_t first_index, uint8_t n_leads)
{
    payload[0] = PROTO_T_SAMPLES;
    payload[1] = n_leads;
    proto_put_u16(payload + 2, 0u);
    proto_put_u32(payload + 4, first_index);
    return PROTO_SAMPLES_HEAD;
}

size_t proto_samples_row(uint8_t *payload, size_t len, uint16_t status, const int32_t *values, uint8_t n_leads)
{
    unsigned i;
    uint8_t *p = payload + len;
    proto_put_u16(p, status);
    p += 2;
    for (i = 0; i < n_leads; i++) {
        uint32_t u = (uint32_t)values[i] & 0xFFFFFFu; /* two's complement, low 24 bits */
        p[0] = (uint8_t)(u & 0xFFu);
        p[1] = (uint8_t)((u >> 8) & 0xFFu);
        p[2] = (uint8_t)(u >> 16);
        p += 3;
    }
    return len + 2u + 3u * (size_t)n_leads;
}

void proto_samples_end(uint8_t *payload, uint16_t n_rows)
{
    proto_put_u16(payload + 2, n_rows);
}

unsigned proto_samples_max_rows(uint8_t n_leads)
{
    return (PROTO_MAX_PAYLOAD - PROTO_SAMPLES_HEAD) / (2u + 3u * (unsigned)n_leads);
}

int32_t proto_samples_value(const uint8_t *payload, unsigned row, unsigned lead)
{
    unsigned n_leads = payload[1];
    const uint8_t *p = payload + PROTO_SAMPLES_HEAD + row * (2u + 3u * n_leads) + 2u + 3u * lead;
    uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
    return (int32_t)(u ^ 0x800000u) - 0x800000;
}

size_t proto_frame(uint8_t *payload, size_t len, uint8_t *wire)
{
    size_t n;
    proto_put_u32(payload + len, crc32(payload, len)); /* payload buffers have 4 spare bytes */
    n = cobs_encode(payload, len + 4u, wire);
    wire[n] = 0u;
    return n + 1u;
}

void proto_rx_init(proto_rx_t *rx)
{
    memset(rx, 0, sizeof(*rx));
}

int proto_rx_byte(proto_rx_t *rx, uint8_t byte)
{
    long n;
    if (byte != 0u) {
        if (rx->len < sizeof(rx->buf)) {
            rx->buf[rx->len++] = byte;
        } else if (!rx->overflow) {
            rx->overflow = 1;
            rx->bad++;
        }
        return 0;
    }
    if (rx->overflow || rx->len == 0u) {
        rx->overflow = 0;
        rx->len = 0;
        return 0;
    }
    n = cobs_decode(rx->buf, rx->len, rx->payload, sizeof(rx->payload));
    rx->len = 0;
    if (n < 5 || crc32(rx->payload, (size_t)n - 4u) != proto_get_u32(rx->payload + n - 4)) {
        rx->bad++;
        return 0;
    }
    rx->payload_len = (size_t)n - 4u;
    return 1;
}
