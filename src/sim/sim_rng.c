/*
 * sim_rng.c: the simulator's one PRNG (xoshiro256**, seeded by splitmix64).
 * Every random choice of a run comes from here, so a seed reproduces it.
 */
#include "sim/sim.h"

#include <assert.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sim_rng_seed(sim_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t sim_rng_below(sim_rng *r, uint64_t n)
{
    assert(n > 0);
    return (uint64_t)(((unsigned __int128)sim_rng_next(r) * n) >> 64);
}

uint64_t sim_rng_range(sim_rng *r, uint64_t lo, uint64_t hi)
{
    assert(lo <= hi);
    if (hi - lo == UINT64_MAX)
        return sim_rng_next(r);
    return lo + sim_rng_below(r, hi - lo + 1);
}

bool sim_rng_chance(sim_rng *r, uint32_t ppm)
{
    if (ppm == 0)
        return false;
    return sim_rng_below(r, 1000000) < ppm;
}
