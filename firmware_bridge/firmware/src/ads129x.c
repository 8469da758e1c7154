/* ads129x.c - see ads129x.h. */
#include "ads129x.h"

uint16_t ads129x_status_bits(uint8_t loff_statp, uint8_t loff_statn, uint8_t gpio)
{
    uint16_t bits = 0;
    unsigned v;
    if (loff_statn & 0x03u) {
        bits |= ELECTRODE_RA; /* RA is the negative input of CH1 and CH2 */
    }
    if (loff_statp & 0x01u) {
        bits |= ELECTRODE_LA;
    }
    if (loff_statp & 0x02u) {
        bits |= ELECTRODE_LL;
    }
    for (v = 0; v < 6u; v++) {
        if (loff_statp & (1u << (2u + v))) {
            bits |= (uint16_t)(ELECTRODE_V1 << v);
        }
    }
    if (gpio & 0x01u) {
        bits |= ROW_PACER;
    }
    return bits;
}

int ads129x_parse(const uint8_t raw[27], sample_row_t *row)
{
    uint32_t status = ((uint32_t)raw[0] << 16) | ((uint32_t)raw[1] << 8) | raw[2];
    unsigned ch;
    if ((status >> 20) != 0xCu) {
        return -1;
    }
    row->status = ads129x_status_bits((uint8_t)(status >> 12), (uint8_t)(status >> 4), (uint8_t)(status & 0x0Fu));
    for (ch = 0; ch < ADS_CHANNELS; ch++) {
        const uint8_t *p = raw + 3u + 3u * ch;
        uint32_t u = ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
        /* sign-extend 24 -> 32 bits without implementation-defined shifts */
        row->value[ch] = (int32_t)(u ^ 0x800000u) - 0x800000;
    }
    return 0;
}
