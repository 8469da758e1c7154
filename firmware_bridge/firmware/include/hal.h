/*
 * hal.h - the only hardware the reference cart firmware touches.
 *
 * A board port implements these functions for its MCU (SPI to the ADS129x, the USB CDC-ACM or
 * UART driver, a millisecond tick). The host unit tests implement them with a scripted ADC and
 * byte buffers (tests/hal_host.c), because no ADS129x or MCU exists on a build machine.
 *
 * Concurrency contract: cart_on_data_ready() runs in the ADC data-ready (DRDY) interrupt and is
 * the only producer of the sample ring; cart_poll() runs in the main loop and is its only
 * consumer. Nothing else is shared, so the ring needs no lock (see sample_ring.h).
 */
#ifndef CART_HAL_H
#define CART_HAL_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of one ADS129x read-data-continuous readout: 24-bit status + 8 channels x 24 bits. */
#define HAL_ADS_READOUT_BYTES 27u

/* Read one conversion (called from the DRDY interrupt). Returns 0 on success. */
int hal_adc_read(uint8_t raw[HAL_ADS_READOUT_BYTES]);

/* Non-blocking: queue up to len bytes for the host; returns how many were accepted. */
size_t hal_link_write(const uint8_t *data, size_t len);

/* Non-blocking: copy up to cap received bytes into buf; returns how many (0 if none). */
size_t hal_link_read(uint8_t *buf, size_t cap);

/* Milliseconds since power-up (wraps after 49 days; users compare differences). */
uint32_t hal_millis(void);

/* Battery voltage in millivolts and state of charge in percent (255 = on mains). */
uint16_t hal_battery_mv(void);
uint8_t hal_battery_pct(void);

#endif /* CART_HAL_H */
