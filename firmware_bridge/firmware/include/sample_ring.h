/* sample_ring.h - single-producer (ADC interrupt) / single-consumer (main loop) ring of rows.
 *
 * Lock-free by construction: the interrupt only writes `head`, the main loop only writes `tail`,
 * both are free-running 32-bit counters (capacity is a power of two), and each side publishes its
 * counter after the row data it guards. When the main loop falls behind (the host stopped
 * reading), new rows are dropped and counted; their sample indices are skipped, so the host sees
 * the loss as a gap in the running sample index instead of shifted time. */
#ifndef CART_SAMPLE_RING_H
#define CART_SAMPLE_RING_H

#include <stdint.h>

#define RING_MAX_CHANNELS 8u
#ifndef RING_CAPACITY
#define RING_CAPACITY 256u /* rows; a power of two. 0.5 s at 500 Hz */
#endif

typedef struct {
    uint32_t index;                  /* running sample index (ADC conversions since power-up) */
    uint16_t status;                 /* electrode-off bits and PACER (protocol row status word) */
    int32_t value[RING_MAX_CHANNELS]; /* ADC counts, 24-bit signed range */
} sample_row_t;

typedef struct {
    sample_row_t rows[RING_CAPACITY];
    volatile uint32_t head;    /* rows pushed (written by the producer only) */
    volatile uint32_t tail;    /* rows popped (written by the consumer only) */
    volatile uint32_t dropped; /* rows lost because the ring was full (producer only) */
} sample_ring_t;

void ring_init(sample_ring_t *ring);
/* Producer: copy row in; returns 0, or -1 (and counts a drop) when full. */
int ring_push(sample_ring_t *ring, const sample_row_t *row);
/* Consumer: rows available to pop. */
uint32_t ring_count(const sample_ring_t *ring);
/* Consumer: the i-th oldest row (i < ring_count()). */
const sample_row_t *ring_peek(const sample_ring_t *ring, uint32_t i);
/* Consumer: release the n oldest rows. */
void ring_pop(sample_ring_t *ring, uint32_t n);

#endif
