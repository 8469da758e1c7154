/* test_firmware.c - host unit tests of the reference cart firmware, and its side of the shared
 * test vectors.
 *
 *   test_firmware [VECTOR_DIR]        unit tests; with VECTOR_DIR also check every committed
 *                                     vector (encode == file bytes, decode(file) == payload)
 *   test_firmware --write-vectors DIR write the vectors (how the committed files were made)
 *   test_firmware --write-stream FILE run the cart application on the host HAL and write
 *                                     everything it sends; prints a summary line on stdout
 *   test_firmware --read-stream FILE  receive a stream another encoder wrote; one line per frame
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ads129x.h"
#include "cart.h"
#include "cobs.h"
#include "crc32.h"
#include "hal_host.h"
#include "proto.h"
#include "sample_ring.h"

static int failures, checks;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        checks++;                                                                     \
        if (!(cond)) {                                                                \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

/* ---------------------------------------------------------------- CRC-32 and COBS */

static void test_crc32(void)
{
    const uint8_t check[] = "123456789";
    CHECK(crc32(check, 9) == 0xCBF43926u);
    CHECK(crc32_update(crc32_update(0, check, 4), check + 4, 5) == 0xCBF43926u);
    CHECK(crc32(check, 0) == 0u);
}

static void cobs_case(const uint8_t *in, size_t n, const uint8_t *expect, size_t m)
{
    uint8_t enc[1200], dec[1200];
    size_t len = cobs_encode(in, n, enc);
    long back;
    CHECK(len == m && memcmp(enc, expect, m) == 0);
    back = cobs_decode(enc, len, dec, sizeof(dec));
    CHECK(back == (long)n && memcmp(dec, in, n) == 0);
}

static void test_cobs(void)
{
    /* The examples of Cheshire & Baker / the COBS literature. */
    static const uint8_t a_in[] = {0x00}, a_out[] = {0x01, 0x01};
    static const uint8_t b_in[] = {0x00, 0x00}, b_out[] = {0x01, 0x01, 0x01};
    static const uint8_t c_in[] = {0x11, 0x22, 0x00, 0x33}, c_out[] = {0x03, 0x11, 0x22, 0x02, 0x33};
    static const uint8_t d_in[] = {0x11, 0x22, 0x33, 0x44}, d_out[] = {0x05, 0x11, 0x22, 0x33, 0x44};
    static const uint8_t e_in[] = {0x11, 0x00, 0x00, 0x00}, e_out[] = {0x02, 0x11, 0x01, 0x01, 0x01};
    uint8_t in[600], out[600], dec[600];
    unsigned i;
    cobs_case(a_in, 1, a_out, 2);
    cobs_case(b_in, 2, b_out, 3);
    cobs_case(c_in, 4, c_out, 5);
    cobs_case(d_in, 4, d_out, 5);
    cobs_case(e_in, 4, e_out, 5);
    /* 254 non-zero bytes: one full block, no trailing code */
    for (i = 0; i < 254; i++) {
        in[i] = (uint8_t)(i + 1);
    }
    out[0] = 0xFF;
    memcpy(out + 1, in, 254);
    cobs_case(in, 254, out, 255);
    /* 255 bytes 0x00..0xFE */
    for (i = 0; i < 255; i++) {
        in[i] = (uint8_t)i;
    }
    out[0] = 0x01;
    out[1] = 0xFF;
    memcpy(out + 2, in + 1, 254);
    cobs_case(in, 255, out, 256);
    /* 255 bytes 0x01..0xFF */
    for (i = 0; i < 255; i++) {
        in[i] = (uint8_t)(i + 1);
    }
    out[0] = 0xFF;
    memcpy(out + 1, in, 254);
    out[255] = 0x02;
    out[256] = 0xFF;
    cobs_case(in, 255, out, 257);
    /* invalid blocks are refused, not decoded */
    {
        static const uint8_t past_end[] = {0x05, 0x11, 0x22};
        static const uint8_t has_zero[] = {0x03, 0x11, 0x00};
        CHECK(cobs_decode(past_end, 3, dec, sizeof(dec)) == -1);
        CHECK(cobs_decode(has_zero, 3, dec, sizeof(dec)) == -1);
        CHECK(cobs_decode(d_out, 5, dec, 2) == -1); /* output too small */
    }
}

/* ---------------------------------------------------------------- ring and ADS129x */

static sample_ring_t ring_under_test;

static void test_ring(void)
{
    sample_ring_t *r = &ring_under_test;
    sample_row_t row;
    uint32_t i;
    memset(&row, 0, sizeof(row));
    ring_init(r);
    for (i = 0; i < RING_CAPACITY + 5u; i++) {
        row.index = i;
        (void)ring_push(r, &row);
    }
    CHECK(ring_count(r) == RING_CAPACITY);
    CHECK(r->dropped == 5u);
    CHECK(ring_peek(r, 0)->index == 0u && ring_peek(r, RING_CAPACITY - 1u)->index == RING_CAPACITY - 1u);
    ring_pop(r, 100);
    CHECK(ring_count(r) == RING_CAPACITY - 100u);
    for (i = 0; i < 100u; i++) {
        row.index = 1000u + i;
        CHECK(ring_push(r, &row) == 0);
    }
    CHECK(ring_push(r, &row) == -1);
    CHECK(ring_peek(r, RING_CAPACITY - 1u)->index == 1099u); /* wrapped around the array */
    /* free-running counters survive 2^32 wrap */
    r->head = r->tail = 0xFFFFFFF0u;
    for (i = 0; i < 32u; i++) {
        CHECK(ring_push(r, &row) == 0);
    }
    CHECK(ring_count(r) == 32u);
}

static void test_ads129x(void)
{
    uint8_t raw[27];
    sample_row_t row;
    memset(raw, 0, sizeof(raw));
    /* status 1100 | STATP=0b00000101 (LA, V1) | STATN=0b10 (RA via CH2) | GPIO=1 (pace) */
    raw[0] = 0xC0;
    raw[1] = 0x50;
    raw[2] = 0x21;
    raw[3] = 0x7F; raw[4] = 0xFF; raw[5] = 0xFF; /* CH1 = +8388607 */
    raw[6] = 0x80; raw[7] = 0x00; raw[8] = 0x00; /* CH2 = -8388608 */
    raw[9] = 0xFF; raw[10] = 0xFF; raw[11] = 0xFE; /* CH3 = -2 */
    raw[12] = 0x00; raw[13] = 0x01; raw[14] = 0x00; /* CH4 = 256 */
    CHECK(ads129x_parse(raw, &row) == 0);
    CHECK(row.status == (ELECTRODE_LA | ELECTRODE_V1 | ELECTRODE_RA | ROW_PACER));
    CHECK(row.value[0] == 8388607 && row.value[1] == -8388608 && row.value[2] == -2 && row.value[3] == 256);
    CHECK(row.value[4] == 0);
    CHECK(ads129x_status_bits(0xFF, 0x03, 0) == 0x01FFu);
    CHECK(ads129x_status_bits(0x80, 0, 0) == (ELECTRODE_V1 << 5)); /* IN8P = V6 */
    raw[0] = 0x40; /* preamble broken */
    CHECK(ads129x_parse(raw, &row) == -1);
}

/* ---------------------------------------------------------------- framing and receiver */

static void test_proto_rx(void)
{
    static proto_rx_t rx;
    uint8_t payload[PROTO_MAX_PAYLOAD + 4], wire[PROTO_MAX_WIRE];
    size_t len, n, i;
    int got = 0;
    proto_rx_init(&rx);
    len = proto_command(payload, PROTO_T_PING, 0xA1B2C3D4u);
    n = proto_frame(payload, len, wire);
    CHECK(wire[n - 1] == 0u);
    for (i = 0; i + 1 < n; i++) {
        CHECK(wire[i] != 0u);
    }
    /* garbage, a frame with a flipped bit, then the frame intact */
    {
        static const uint8_t junk[] = {0x13, 0x37, 0x00, 0xFF, 0x00};
        for (i = 0; i < sizeof(junk); i++) {
            got += proto_rx_byte(&rx, junk[i]);
        }
        wire[3] ^= 0x10u;
        for (i = 0; i < n; i++) {
            got += proto_rx_byte(&rx, wire[i]);
        }
        wire[3] ^= 0x10u;
        CHECK(got == 0 && rx.bad == 3u);
        for (i = 0; i < n; i++) {
            got += proto_rx_byte(&rx, wire[i]);
        }
        CHECK(got == 1 && rx.payload_len == PROTO_PING_LEN && rx.payload[0] == PROTO_T_PING);
        CHECK(proto_get_u32(rx.payload + 4) == 0xA1B2C3D4u);
    }
    /* an endless run without delimiter is dropped once, then reception resumes */
    for (i = 0; i < PROTO_MAX_WIRE + 10u; i++) {
        got += proto_rx_byte(&rx, 0x55);
    }
    (void)proto_rx_byte(&rx, 0);
    CHECK(rx.bad == 4u);
    for (i = 0; i < n; i++) {
        got += proto_rx_byte(&rx, wire[i]);
    }
    CHECK(got == 2);
}

/* ---------------------------------------------------------------- the cart application */

static cart_t cart_under_test;

static void default_config(cart_config_t *cfg, uint8_t rows_per_frame)
{
    static const char *names[8] = {"I", "II", "V1", "V2", "V3", "V4", "V5", "V6"};
    unsigned i;
    memset(cfg, 0, sizeof(*cfg));
    cfg->hello.fw_major = 1;
    cfg->hello.fw_minor = 2;
    cfg->hello.fw_patch = 3;
    cfg->hello.n_leads = 8;
    cfg->hello.rows_per_frame = rows_per_frame;
    cfg->hello.device_id = 0x0123456789ABCDEFull;
    cfg->hello.session_id = 0x5EED1234u;
    cfg->hello.fs_millihz = 500000u;
    for (i = 0; i < 8u; i++) {
        strncpy(cfg->hello.lead_names[i], names[i], PROTO_LEAD_NAME_BYTES);
        cfg->hello.uv_per_lsb[i] = 0.0476837158203125f; /* ADS1298: 2 x 2.4 V / gain 6 / 2^24 */
    }
    cfg->hello.uv_per_lsb[2] = 0.095367431640625f; /* V1 at PGA gain 3: twice the step */
    cfg->status_period_ms = 1000u;
    cfg->low_battery_mv = 3500u;
}

static void host_command(uint8_t kind, uint32_t nonce)
{
    uint8_t payload[16], wire[32];
    size_t n = proto_frame(payload, proto_command(payload, kind, nonce), wire);
    host_link_send(wire, n);
}

/* Decode everything the cart sent so far; count frames per type; remember the SAMPLES indices. */
typedef struct {
    unsigned hello, samples, status, pong, rows;
    uint32_t first_index[4096];
    uint16_t rows_of[4096];
    uint32_t last_dropped;
    uint32_t last_errors;
} seen_t;

static void decode_output(seen_t *seen)
{
    static proto_rx_t rx;
    size_t i;
    memset(seen, 0, sizeof(*seen));
    proto_rx_init(&rx);
    for (i = 0; i < host_link_out_len; i++) {
        if (!proto_rx_byte(&rx, host_link_out[i])) {
            continue;
        }
        switch (rx.payload[0]) {
        case PROTO_T_HELLO: seen->hello++; break;
        case PROTO_T_STATUS:
            seen->status++;
            seen->last_errors = proto_get_u32(rx.payload + 4);
            seen->last_dropped = proto_get_u32(rx.payload + 8);
            break;
        case PROTO_T_PONG: seen->pong++; break;
        case PROTO_T_SAMPLES:
            if (seen->samples < 4096u) {
                seen->first_index[seen->samples] = proto_get_u32(rx.payload + 4);
                seen->rows_of[seen->samples] = proto_get_u16(rx.payload + 2);
            }
            seen->samples++;
            seen->rows += proto_get_u16(rx.payload + 2);
            break;
        default: break;
        }
    }
    CHECK(rx.bad == 0u);
}

static void test_cart(void)
{
    cart_t *cart = &cart_under_test;
    cart_config_t cfg;
    static seen_t seen;
    unsigned k;
    host_hal_reset(1u);
    default_config(&cfg, 10);
    cart_init(cart, &cfg);
    /* conversions before START advance the index but are not sent */
    for (k = 0; k < 7u; k++) {
        cart_on_data_ready(cart);
    }
    cart_poll(cart);
    CHECK(host_link_out_len == 0u);
    host_command(PROTO_T_GET_HELLO, 0);
    host_command(PROTO_T_START, 0);
    cart_poll(cart);
    for (k = 0; k < 25u; k++) {
        cart_on_data_ready(cart);
        host_millis += 2;
    }
    cart_poll(cart);
    decode_output(&seen);
    CHECK(seen.hello == 1u && seen.samples == 2u && seen.rows == 20u);
    CHECK(seen.first_index[0] == 7u && seen.first_index[1] == 17u);
    /* the main loop stalls: the ring overflows, rows are dropped, the index skips them */
    for (k = 0; k < RING_CAPACITY + 40u; k++) {
        cart_on_data_ready(cart);
        host_millis += 2;
    }
    host_command(PROTO_T_PING, 77);
    cart_poll(cart);
    decode_output(&seen);
    /* 5 rows of the unfinished frame were still queued: 251 fit, 45 were dropped */
    CHECK(cart->ring.dropped == 45u);
    CHECK(seen.pong == 1u && seen.status == 0u);
    /* 250 rows went out in full frames; 6 wait for their frame to fill */
    CHECK(seen.first_index[seen.samples - 1u] + seen.rows_of[seen.samples - 1u] == 277u);
    /* STOP: nothing more is sent, the clock keeps running */
    host_command(PROTO_T_STOP, 0);
    cart_poll(cart);
    {
        size_t before = host_link_out_len;
        for (k = 0; k < 50u; k++) {
            cart_on_data_ready(cart);
        }
        cart_poll(cart);
        CHECK(host_link_out_len == before);
    }
    CHECK(cart->adc_index == 7u + 25u + RING_CAPACITY + 40u + 50u);
    /* a bad command is counted and reported, not acted on */
    {
        uint8_t payload[8] = {0x99}, wire[32];
        size_t n = proto_frame(payload, 1, wire);
        host_link_send(wire, n);
        host_command(PROTO_T_START, 0);
        cart_poll(cart);
        host_millis += 1000;
        for (k = 0; k < 10u; k++) {
            cart_on_data_ready(cart);
        }
        cart_poll(cart);
        CHECK(cart->errors == 0u); /* reported in the STATUS just sent, then cleared */
        decode_output(&seen);
        CHECK(seen.status == 1u && seen.last_dropped == 45u);
        CHECK(seen.last_errors == (STATUS_ERR_BAD_COMMAND | STATUS_ERR_RING_OVERFLOW));
    }
}

/* ---------------------------------------------------------------- shared vectors */

typedef struct {
    const char *name;
    uint8_t payload[PROTO_MAX_PAYLOAD + 4];
    size_t len;
} vector_t;

static int32_t sign24(uint32_t u)
{
    return (int32_t)((u & 0xFFFFFFu) ^ 0x800000u) - 0x800000;
}

/* The same frames as vectors/vectors.json describes field by field for Python. */
static size_t build_vectors(vector_t *v)
{
    size_t n = 0;
    cart_config_t cfg;
    proto_status_t st;
    uint32_t s;
    unsigned r, l;
    default_config(&cfg, 10);
    v[n].name = "hello";
    v[n].len = proto_hello(v[n].payload, &cfg.hello);
    n++;
    {
        static const int32_t vals[3][2] = {{0, 1}, {-1, 8388607}, {-8388608, 123456}};
        static const uint16_t status[3] = {0x0000u, 0x0002u, 0x8001u};
        v[n].name = "samples_small";
        v[n].len = proto_samples_begin(v[n].payload, 1000u, 2);
        for (r = 0; r < 3u; r++) {
            v[n].len = proto_samples_row(v[n].payload, v[n].len, status[r], vals[r], 2);
        }
        proto_samples_end(v[n].payload, 3);
        n++;
    }
    v[n].name = "samples_wrap";
    v[n].len = proto_samples_begin(v[n].payload, 0xFFFFFFFEu, 8);
    s = 7u;
    for (r = 0; r < 4u; r++) {
        int32_t row[8];
        for (l = 0; l < 8u; l++) {
            row[l] = sign24(host_lcg(&s) >> 8);
        }
        v[n].len = proto_samples_row(v[n].payload, v[n].len, 0, row, 8);
    }
    proto_samples_end(v[n].payload, 4);
    n++;
    v[n].name = "samples_long_run"; /* 600 non-zero bytes: exercises 0xFF COBS blocks */
    v[n].len = proto_samples_begin(v[n].payload, 0x01020304u, 1);
    for (r = 0; r < 120u; r++) {
        int32_t minus_one = -1;
        v[n].len = proto_samples_row(v[n].payload, v[n].len, 0x81FFu, &minus_one, 1);
    }
    proto_samples_end(v[n].payload, 120);
    n++;
    st.battery_pct = 87;
    st.battery_mv = 3912;
    st.errors = 0x5u;
    st.dropped_rows = 17;
    st.uptime_ms = 123456u;
    st.rx_bad_frames = 2;
    v[n].name = "status";
    v[n].len = proto_status(v[n].payload, &st);
    n++;
    v[n].name = "pong";
    v[n].len = proto_pong(v[n].payload, 0xCAFEBABEu, 42u);
    n++;
    v[n].name = "cmd_get_hello";
    v[n].len = proto_command(v[n].payload, PROTO_T_GET_HELLO, 0);
    n++;
    v[n].name = "cmd_start";
    v[n].len = proto_command(v[n].payload, PROTO_T_START, 0);
    n++;
    v[n].name = "cmd_stop";
    v[n].len = proto_command(v[n].payload, PROTO_T_STOP, 0);
    n++;
    v[n].name = "cmd_ping";
    v[n].len = proto_command(v[n].payload, PROTO_T_PING, 0x01020304u);
    n++;
    return n;
}

static vector_t vectors[16];
static uint8_t file_buf[PROTO_MAX_WIRE * 2];

static int vector_path(char *path, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(path, cap, "%s/%s.bin", dir, name);
    return n > 0 && (size_t)n < cap;
}

static void write_vectors(const char *dir)
{
    size_t n = build_vectors(vectors), i;
    uint8_t wire[PROTO_MAX_WIRE];
    char path[1024];
    for (i = 0; i < n; i++) {
        size_t len = proto_frame(vectors[i].payload, vectors[i].len, wire);
        FILE *f;
        if (!vector_path(path, sizeof(path), dir, vectors[i].name) || !(f = fopen(path, "wb"))) {
            fprintf(stderr, "cannot write %s\n", path);
            exit(2);
        }
        fwrite(wire, 1, len, f);
        fclose(f);
    }
}

static void check_vectors(const char *dir)
{
    static proto_rx_t rx;
    size_t n = build_vectors(vectors), i, j;
    uint8_t wire[PROTO_MAX_WIRE];
    char path[1024];
    for (i = 0; i < n; i++) {
        size_t len = proto_frame(vectors[i].payload, vectors[i].len, wire), got;
        int frames = 0;
        FILE *f;
        if (!vector_path(path, sizeof(path), dir, vectors[i].name) || !(f = fopen(path, "rb"))) {
            fprintf(stderr, "missing vector %s\n", path);
            failures++;
            continue;
        }
        got = fread(file_buf, 1, sizeof(file_buf), f);
        fclose(f);
        checks++;
        if (got != len || memcmp(file_buf, wire, len) != 0) {
            failures++;
            fprintf(stderr, "vector %s: C encoder output differs from the committed file\n", vectors[i].name);
        }
        proto_rx_init(&rx);
        for (j = 0; j < got; j++) {
            frames += proto_rx_byte(&rx, file_buf[j]);
        }
        CHECK(frames == 1 && rx.payload_len == vectors[i].len && memcmp(rx.payload, vectors[i].payload, vectors[i].len) == 0);
    }
}

/* ---------------------------------------------------------------- cross-language streams */

static int write_stream(const char *file)
{
    cart_t *cart = &cart_under_test;
    cart_config_t cfg;
    unsigned k;
    FILE *f;
    host_hal_reset(12345u);
    host_adc_fault_at = 1500u;
    default_config(&cfg, 10);
    cart_init(cart, &cfg);
    host_command(PROTO_T_GET_HELLO, 0);
    host_command(PROTO_T_START, 0);
    cart_poll(cart);
    for (k = 0; k < 3000u; k++) {
        cart_on_data_ready(cart);
        host_millis += 2;
        if (k == 1200u) {
            host_command(PROTO_T_PING, 0xABCDu);
        }
        /* the main loop runs every 5 conversions, except for a 400-conversion stall */
        if (k % 5u == 4u && !(k > 1000u && k < 1400u)) {
            cart_poll(cart);
        }
    }
    host_command(PROTO_T_STOP, 0);
    cart_poll(cart);
    f = fopen(file, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", file);
        return 2;
    }
    fwrite(host_link_out, 1, host_link_out_len, f);
    fclose(f);
    printf("conversions=%u dropped=%u faults=%u bytes=%lu\n", (unsigned)cart->adc_index, (unsigned)cart->ring.dropped,
           (unsigned)cart->adc_faults, (unsigned long)host_link_out_len);
    return 0;
}

static int read_stream(const char *file)
{
    static proto_rx_t rx;
    static uint8_t data[1u << 22];
    size_t got, i;
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "cannot read %s\n", file);
        return 2;
    }
    got = fread(data, 1, sizeof(data), f);
    fclose(f);
    proto_rx_init(&rx);
    for (i = 0; i < got; i++) {
        const uint8_t *p = rx.payload;
        if (!proto_rx_byte(&rx, data[i])) {
            continue;
        }
        switch (p[0]) {
        case PROTO_T_SAMPLES: {
            unsigned rows = proto_get_u16(p + 2), leads = p[1], r, l;
            long long sum = 0;
            unsigned status_xor = 0;
            for (r = 0; r < rows; r++) {
                status_xor ^= proto_get_u16(p + PROTO_SAMPLES_HEAD + r * (2u + 3u * leads));
                for (l = 0; l < leads; l++) {
                    sum += proto_samples_value(p, r, l);
                }
            }
            printf("SAMPLES %u %u %u %lld %u\n", (unsigned)proto_get_u32(p + 4), rows, leads, sum, status_xor);
            break;
        }
        case PROTO_T_HELLO:
            printf("HELLO %u %u %u\n", (unsigned)p[5], (unsigned)proto_get_u32(p + 16), (unsigned)proto_get_u32(p + 20));
            break;
        case PROTO_T_STATUS:
            printf("STATUS %u %u\n", (unsigned)proto_get_u32(p + 4), (unsigned)proto_get_u32(p + 8));
            break;
        case PROTO_T_PONG:
            printf("PONG %u\n", (unsigned)proto_get_u32(p + 4));
            break;
        case PROTO_T_PING:
            printf("CMD %u %u\n", (unsigned)p[0], (unsigned)proto_get_u32(p + 4));
            break;
        default:
            printf("CMD %u 0\n", (unsigned)p[0]);
            break;
        }
    }
    printf("BAD %u\n", (unsigned)rx.bad);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-vectors") == 0) {
        write_vectors(argv[2]);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--write-stream") == 0) {
        return write_stream(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "--read-stream") == 0) {
        return read_stream(argv[2]);
    }
    test_crc32();
    test_cobs();
    test_ring();
    test_ads129x();
    test_proto_rx();
    test_cart();
    if (argc == 2) {
        check_vectors(argv[1]);
    }
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
