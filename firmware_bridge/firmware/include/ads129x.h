/* ads129x.h - one ADS1298 (ADS129x family) conversion as the DRDY interrupt reads it.
 *
 * A read-data-continuous readout is 27 bytes, MSB first: a 24-bit status word
 * (1100 | LOFF_STATP[7:0] | LOFF_STATN[7:0] | GPIO[4:1]) then 8 channels of 24-bit two's
 * complement. The reference cart wires the standard 12-lead front end:
 *   CH1 = LA - RA (lead I), CH2 = LL - RA (lead II), CH3..CH8 = V1..V6 - WCT,
 * so LOFF_STATP bit0 = LA, bit1 = LL, bits2..7 = V1..V6 and LOFF_STATN bits0..1 = RA;
 * GPIO1 carries the external pace detector's latched output. */
#ifndef CART_ADS129X_H
#define CART_ADS129X_H

#include <stdint.h>

#include "sample_ring.h"

#define ADS_CHANNELS 8u

/* Protocol row status bits (must match PROTOCOL.md and firmware_bridge/frames.py). */
#define ELECTRODE_RA (1u << 0)
#define ELECTRODE_LA (1u << 1)
#define ELECTRODE_LL (1u << 2)
#define ELECTRODE_V1 (1u << 3) /* V2..V6 follow at bits 4..8 */
#define ROW_PACER (1u << 15)

/* Fill row->status and row->value[0..7] from a readout. Returns 0, or -1 when the status word
 * does not start with 1100 (SPI out of step or ADC not running): the row must not be used. */
int ads129x_parse(const uint8_t raw[27], sample_row_t *row);

/* The row status word for given LOFF_STATP / LOFF_STATN / GPIO values (used by tests too). */
uint16_t ads129x_status_bits(uint8_t loff_statp, uint8_t loff_statn, uint8_t gpio);

#endif
