/* cart.c - see cart.h. */
#include "cart.h"

#include <string.h>

#include "ads129x.h"

static void send_payload(cart_t *cart, size_t len)
{
    size_t n = proto_frame(cart->payload, len, cart->wire);
    /* The link driver buffers whole frames; a short write means the host is not reading, and the
     * ring (not the link) is where the backlog is kept and, if it must be, dropped. */
    (void)hal_link_write(cart->wire, n);
}

static void send_hello(cart_t *cart)
{
    send_payload(cart, proto_hello(cart->payload, &cart->cfg.hello));
}

static void send_status(cart_t *cart)
{
    proto_status_t st;
    st.battery_pct = hal_battery_pct();
    st.battery_mv = hal_battery_mv();
    st.errors = cart->errors;
    if (cart->ring.dropped) {
        st.errors |= STATUS_ERR_RING_OVERFLOW;
    }
    if (cart->adc_faults) {
        st.errors |= STATUS_ERR_ADC_FAULT;
    }
    if (st.battery_pct != 255u && st.battery_mv < cart->cfg.low_battery_mv) {
        st.errors |= STATUS_ERR_LOW_BATTERY;
    }
    st.dropped_rows = cart->ring.dropped;
    st.uptime_ms = hal_millis();
    st.rx_bad_frames = cart->rx.bad;
    cart->errors = 0;
    send_payload(cart, proto_status(cart->payload, &st));
}

void cart_init(cart_t *cart, const cart_config_t *cfg)
{
    memset(cart, 0, sizeof(*cart));
    cart->cfg = *cfg;
    if (cart->cfg.hello.n_leads > RING_MAX_CHANNELS) {
        cart->cfg.hello.n_leads = RING_MAX_CHANNELS;
    }
    if (cart->cfg.hello.rows_per_frame == 0u) {
        cart->cfg.hello.rows_per_frame = 1u;
    }
    ring_init(&cart->ring);
    proto_rx_init(&cart->rx);
    cart->last_status_ms = hal_millis();
}

void cart_on_data_ready(cart_t *cart)
{
    uint8_t raw[HAL_ADS_READOUT_BYTES];
    sample_row_t row;
    uint32_t index = cart->adc_index;
    cart->adc_index = index + 1u; /* the clock advances whatever happens to this conversion */
    if (hal_adc_read(raw) != 0 || ads129x_parse(raw, &row) != 0) {
        cart->adc_faults++;
        return; /* never send a misaligned conversion: the host sees a one-sample gap */
    }
    if (!cart->streaming) {
        return;
    }
    row.index = index;
    (void)ring_push(&cart->ring, &row);
}

/* Send rows as SAMPLES frames: full frames always, a short frame only at an index
 * discontinuity (dropped or faulty conversions), so every frame's rows are consecutive. */
static void send_samples(cart_t *cart)
{
    const uint8_t leads = cart->cfg.hello.n_leads;
    unsigned per_frame = cart->cfg.hello.rows_per_frame;
    if (per_frame > proto_samples_max_rows(leads)) {
        per_frame = proto_samples_max_rows(leads);
    }
    for (;;) {
        uint32_t avail = ring_count(&cart->ring);
        uint32_t first, n = 0;
        size_t len;
        if (avail == 0u) {
            return;
        }
        first = ring_peek(&cart->ring, 0)->index;
        while (n < avail && n < per_frame && ring_peek(&cart->ring, n)->index == first + n) {
            n++;
        }
        if (n < per_frame && n == avail) {
            return; /* wait for the frame to fill */
        }
        len = proto_samples_begin(cart->payload, first, leads);
        {
            uint32_t i;
            for (i = 0; i < n; i++) {
                const sample_row_t *row = ring_peek(&cart->ring, i);
                len = proto_samples_row(cart->payload, len, row->status, row->value, leads);
            }
        }
        proto_samples_end(cart->payload, (uint16_t)n);
        ring_pop(&cart->ring, n);
        send_payload(cart, len);
    }
}

static void handle_command(cart_t *cart)
{
    const uint8_t *p = cart->rx.payload;
    size_t len = cart->rx.payload_len;
    switch (p[0]) {
    case PROTO_T_GET_HELLO:
        send_hello(cart);
        break;
    case PROTO_T_START:
        /* Rows queued before an earlier STOP are stale: start from the next conversion. */
        cart->ring.tail = cart->ring.head;
        cart->streaming = 1;
        break;
    case PROTO_T_STOP:
        cart->streaming = 0;
        break;
    case PROTO_T_PING:
        if (len == PROTO_PING_LEN) {
            send_payload(cart, proto_pong(cart->payload, proto_get_u32(p + 4), hal_millis()));
        } else {
            cart->errors |= STATUS_ERR_BAD_COMMAND;
        }
        break;
    default:
        cart->errors |= STATUS_ERR_BAD_COMMAND;
        break;
    }
}

void cart_poll(cart_t *cart)
{
    uint8_t in[64];
    size_t n, i;
    while ((n = hal_link_read(in, sizeof(in))) > 0u) {
        for (i = 0; i < n; i++) {
            if (proto_rx_byte(&cart->rx, in[i])) {
                handle_command(cart);
            }
        }
    }
    if (cart->streaming) {
        send_samples(cart);
        if ((uint32_t)(hal_millis() - cart->last_status_ms) >= cart->cfg.status_period_ms) {
            cart->last_status_ms = hal_millis();
            send_status(cart);
        }
    }
}
