/* hal_host.h - the host test double of hal.h: a scripted ADS129x and byte-buffer link.
 * Only for host unit tests: a build machine has no ADS129x, MCU or USB device port. */
#ifndef CART_HAL_HOST_H
#define CART_HAL_HOST_H

#include <stddef.h>
#include <stdint.h>

#define HOST_LINK_OUT_CAP (8u << 20)

extern uint8_t host_link_out[HOST_LINK_OUT_CAP];
extern size_t host_link_out_len;
extern uint32_t host_millis;
extern uint32_t host_adc_fault_at; /* conversion number that returns a bad status word */

/* Deterministic ADC: conversion k's channels and lead-off bits come from an LCG seeded here. */
void host_hal_reset(uint32_t seed);
/* Queue bytes the "host" sends to the cart. */
void host_link_send(const uint8_t *data, size_t len);
uint32_t host_lcg(uint32_t *state);

#endif
