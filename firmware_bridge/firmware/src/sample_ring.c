/* sample_ring.c - see sample_ring.h. */
#include "sample_ring.h"

#include <string.h>

#if (RING_CAPACITY & (RING_CAPACITY - 1u)) != 0u
#error "RING_CAPACITY must be a power of two"
#endif

void ring_init(sample_ring_t *ring)
{
    memset(ring, 0, sizeof(*ring));
}

int ring_push(sample_ring_t *ring, const sample_row_t *row)
{
    uint32_t head = ring->head;
    if (head - ring->tail >= RING_CAPACITY) {
        ring->dropped++;
        return -1;
    }
    ring->rows[head & (RING_CAPACITY - 1u)] = *row;
    ring->head = head + 1u; /* publish after the row is written */
    return 0;
}

uint32_t ring_count(const sample_ring_t *ring)
{
    return ring->head - ring->tail;
}

const sample_row_t *ring_peek(const sample_ring_t *ring, uint32_t i)
{
    return &ring->rows[(ring->tail + i) & (RING_CAPACITY - 1u)];
}

void ring_pop(sample_ring_t *ring, uint32_t n)
{
    ring->tail += n;
}
