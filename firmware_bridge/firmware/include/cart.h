/* cart.h - the reference cart application: ADC interrupt -> sample ring -> SAMPLES frames.
 *
 * The ADC converts continuously from power-up, and every conversion advances the running sample
 * index, streaming or not; START and STOP only gate what goes to the host. So the index is the
 * cart's clock: after a STOP/START, a stall or a USB re-enumeration the host sees exactly how many
 * samples it did not get. Board code calls cart_on_data_ready() from the DRDY interrupt and
 * cart_poll() from its main loop. */
#ifndef CART_CART_H
#define CART_CART_H

#include <stdint.h>

#include "hal.h"
#include "proto.h"
#include "sample_ring.h"

typedef struct {
    proto_hello_t hello;      /* identity and format; n_leads <= RING_MAX_CHANNELS */
    uint32_t status_period_ms; /* STATUS frame period while streaming (e.g. 1000) */
    uint16_t low_battery_mv;
} cart_config_t;

typedef struct {
    cart_config_t cfg;
    sample_ring_t ring;
    proto_rx_t rx;
    volatile uint32_t adc_index; /* conversions since power-up (written by the interrupt only) */
    volatile uint32_t adc_faults;
    volatile int streaming;
    uint32_t last_status_ms;
    uint32_t errors; /* STATUS_ERR_* seen since the last STATUS frame */
    uint8_t payload[PROTO_MAX_PAYLOAD + 4u];
    uint8_t wire[PROTO_MAX_WIRE];
} cart_t;

void cart_init(cart_t *cart, const cart_config_t *cfg);
/* DRDY interrupt: read one conversion, stamp its index, queue it if streaming. */
void cart_on_data_ready(cart_t *cart);
/* Main loop: answer commands, send full SAMPLES frames and periodic STATUS frames. */
void cart_poll(cart_t *cart);

#endif
