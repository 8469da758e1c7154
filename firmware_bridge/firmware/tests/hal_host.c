/* hal_host.c - see hal_host.h. */
#include "hal_host.h"

#include <string.h>

#include "hal.h"

uint8_t host_link_out[HOST_LINK_OUT_CAP];
size_t host_link_out_len;
uint32_t host_millis;
uint32_t host_adc_fault_at = 0xFFFFFFFFu;

static uint8_t link_in[1u << 16];
static size_t link_in_len, link_in_pos;
static uint32_t adc_state, adc_count;

uint32_t host_lcg(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state;
}

void host_hal_reset(uint32_t seed)
{
    host_link_out_len = 0;
    host_millis = 0;
    host_adc_fault_at = 0xFFFFFFFFu;
    link_in_len = link_in_pos = 0;
    adc_state = seed;
    adc_count = 0;
}

void host_link_send(const uint8_t *data, size_t len)
{
    memcpy(link_in + link_in_len, data, len);
    link_in_len += len;
}

int hal_adc_read(uint8_t raw[HAL_ADS_READOUT_BYTES])
{
    uint32_t s = host_lcg(&adc_state), status;
    unsigned ch;
    uint8_t statp = 0, statn = 0, gpio = 0;
    if (((s >> 4) & 0x7u) == 0u) {
        statp = (uint8_t)(s >> 24);
        statn = (uint8_t)((s >> 16) & 0x3u);
    }
    if (((s >> 8) & 0x1Fu) == 0u) {
        gpio = 1u;
    }
    status = (0xCu << 20) | ((uint32_t)statp << 12) | ((uint32_t)statn << 4) | gpio;
    if (adc_count == host_adc_fault_at) {
        status = 0; /* SPI out of step: the status word lost its 1100 preamble */
    }
    adc_count++;
    raw[0] = (uint8_t)(status >> 16);
    raw[1] = (uint8_t)(status >> 8);
    raw[2] = (uint8_t)status;
    for (ch = 0; ch < 8u; ch++) {
        uint32_t v = host_lcg(&adc_state) >> 8; /* 24 bits, big-endian as the ADS129x sends */
        raw[3u + 3u * ch] = (uint8_t)(v >> 16);
        raw[4u + 3u * ch] = (uint8_t)(v >> 8);
        raw[5u + 3u * ch] = (uint8_t)v;
    }
    return 0;
}

size_t hal_link_write(const uint8_t *data, size_t len)
{
    if (host_link_out_len + len > HOST_LINK_OUT_CAP) {
        return 0;
    }
    memcpy(host_link_out + host_link_out_len, data, len);
    host_link_out_len += len;
    return len;
}

size_t hal_link_read(uint8_t *buf, size_t cap)
{
    size_t n = link_in_len - link_in_pos;
    if (n > cap) {
        n = cap;
    }
    memcpy(buf, link_in + link_in_pos, n);
    link_in_pos += n;
    return n;
}

uint32_t hal_millis(void)
{
    return host_millis;
}

uint16_t hal_battery_mv(void)
{
    return 3900u;
}

uint8_t hal_battery_pct(void)
{
    return 87u;
}
