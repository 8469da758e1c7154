/* proto.h - cart wire protocol v1 (firmware_bridge/PROTOCOL.md): payload layouts, framing
 * (payload || CRC32_LE, COBS-encoded, 0x00-terminated) and a byte-at-a-time receiver.
 * All multi-byte fields are little-endian and written byte by byte, so the code does not
 * depend on the MCU's endianness or struct padding. */
#ifndef CART_PROTO_H
#define CART_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "cobs.h"

#define PROTO_VERSION 1u

#define PROTO_T_HELLO 0x01u
#define PROTO_T_SAMPLES 0x02u
#define PROTO_T_STATUS 0x03u
#define PROTO_T_PONG 0x04u
#define PROTO_T_GET_HELLO 0x80u
#define PROTO_T_START 0x81u
#define PROTO_T_STOP 0x82u
#define PROTO_T_PING 0x83u

#define PROTO_MAX_LEADS 16u
#define PROTO_LEAD_NAME_BYTES 8u
#define PROTO_MAX_PAYLOAD 4096u
#define PROTO_HELLO_HEAD 24u
#define PROTO_HELLO_LEAD_BYTES 12u /* name[8], float32 uV per LSB */
#define PROTO_SAMPLES_HEAD 8u
#define PROTO_STATUS_LEN 20u
#define PROTO_PONG_LEN 12u
#define PROTO_PING_LEN 8u
/* Largest frame on the wire: payload + CRC, COBS overhead, delimiter. */
#define PROTO_MAX_WIRE (COBS_MAX_ENCODED(PROTO_MAX_PAYLOAD + 4u) + 1u)

#define STATUS_ERR_RING_OVERFLOW (1u << 0)
#define STATUS_ERR_ADC_FAULT (1u << 1)
#define STATUS_ERR_LOW_BATTERY (1u << 2)
#define STATUS_ERR_BAD_COMMAND (1u << 3)

typedef struct {
    uint8_t fw_major, fw_minor, fw_patch;
    uint8_t n_leads;
    uint8_t rows_per_frame;
    uint64_t device_id;
    uint32_t session_id;
    uint32_t fs_millihz;
    char lead_names[PROTO_MAX_LEADS][PROTO_LEAD_NAME_BYTES]; /* NUL-padded, not terminated */
    float uv_per_lsb[PROTO_MAX_LEADS];                       /* per lead (per-channel PGA gain) */
} proto_hello_t;

typedef struct {
    uint8_t battery_pct;
    uint16_t battery_mv;
    uint32_t errors;
    uint32_t dropped_rows;
    uint32_t uptime_ms;
    uint32_t rx_bad_frames;
} proto_status_t;

/* Little-endian field access. */
void proto_put_u16(uint8_t *p, uint16_t v);
void proto_put_u32(uint8_t *p, uint32_t v);
uint16_t proto_get_u16(const uint8_t *p);
uint32_t proto_get_u32(const uint8_t *p);

/* Payload builders: write into payload (capacity PROTO_MAX_PAYLOAD), return the length. */
size_t proto_hello(uint8_t *payload, const proto_hello_t *hello);
size_t proto_status(uint8_t *payload, const proto_status_t *status);
size_t proto_pong(uint8_t *payload, uint32_t nonce, uint32_t uptime_ms);
size_t proto_command(uint8_t *payload, uint8_t kind, uint32_t nonce);
/* SAMPLES: header; rows are appended with proto_samples_row(); finish with proto_samples_end(). */
size_t proto_samples_begin(uint8_t *payload, uint32_t first_index, uint8_t n_leads);
size_t proto_samples_row(uint8_t *payload, size_t len, uint16_t status, const int32_t *values, uint8_t n_leads);
void proto_samples_end(uint8_t *payload, uint16_t n_rows);
/* Rows of n_leads that fit one payload. */
unsigned proto_samples_max_rows(uint8_t n_leads);

/* Frame a payload for the wire (CRC appended, COBS, delimiter); wire needs PROTO_MAX_WIRE bytes. */
size_t proto_frame(uint8_t *payload, size_t len, uint8_t *wire);

/* Receiver: feed bytes one at a time; it returns 1 when a frame with a good CRC completed
 * (payload in rx->payload, length rx->payload_len, CRC removed), else 0. Bad frames (COBS, CRC,
 * over-long) are counted in rx->bad and skipped; reception resynchronises at the next 0x00. */
typedef struct {
    uint8_t buf[PROTO_MAX_WIRE];
    size_t len;
    int overflow;
    uint8_t payload[PROTO_MAX_PAYLOAD + 4u];
    size_t payload_len;
    uint32_t bad;
} proto_rx_t;

void proto_rx_init(proto_rx_t *rx);
int proto_rx_byte(proto_rx_t *rx, uint8_t byte);

/* Read the value of lead `lead` in row `row` of a SAMPLES payload (no bounds checks). */
int32_t proto_samples_value(const uint8_t *payload, unsigned row, unsigned lead);

#endif
