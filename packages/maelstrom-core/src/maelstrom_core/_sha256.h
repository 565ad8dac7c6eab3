/* SHA-256 (FIPS 180-4) for maelstrom_core._digest_c.
 *
 * Two block functions share one context layout: the x86 SHA-NI instructions when the CPU has
 * them (checked once with cpuid, so one binary runs on every x86-64), and portable C for
 * everything else. The SHA-NI function carries its own target attribute, so the build needs no
 * -msha flag and only a C compiler: no OpenSSL headers.
 *
 * Everything here is static and header-only, called from Cython without the GIL; none of it
 * touches Python objects.
 */
#ifndef MAELSTROM_SHA256_H
#define MAELSTROM_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MAEL_SHA256_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

typedef struct {
    uint32_t state[8];
    uint64_t length;     /* bytes hashed so far, for the final length field */
    uint8_t block[64];   /* a partial block waiting for more input */
    size_t used;         /* bytes held in block */
} mael_sha256_ctx;

typedef void (*mael_sha256_blocks_fn)(uint32_t state[8], const uint8_t *data, size_t nblocks);

static const uint32_t mael_sha256_k[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* ---------------------------------------------------------------- portable C ---------- */

#define MAEL_ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define MAEL_CH(x, y, z) (((x) & (y)) ^ (~(x) & (z)))
#define MAEL_MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define MAEL_BSIG0(x) (MAEL_ROTR(x, 2) ^ MAEL_ROTR(x, 13) ^ MAEL_ROTR(x, 22))
#define MAEL_BSIG1(x) (MAEL_ROTR(x, 6) ^ MAEL_ROTR(x, 11) ^ MAEL_ROTR(x, 25))
#define MAEL_SSIG0(x) (MAEL_ROTR(x, 7) ^ MAEL_ROTR(x, 18) ^ ((x) >> 3))
#define MAEL_SSIG1(x) (MAEL_ROTR(x, 17) ^ MAEL_ROTR(x, 19) ^ ((x) >> 10))

static inline uint32_t mael_load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void mael_store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* One round with the working variables renamed instead of shifted, so the compiler keeps all
 * eight in registers when the 64 rounds are unrolled below. */
#define MAEL_ROUND(a, b, c, d, e, f, g, h, i)                                                  \
    do {                                                                                       \
        uint32_t t1 = (h) + MAEL_BSIG1(e) + MAEL_CH(e, f, g) + mael_sha256_k[i] + w[(i) & 15]; \
        uint32_t t2 = MAEL_BSIG0(a) + MAEL_MAJ(a, b, c);                                       \
        (d) += t1;                                                                             \
        (h) = t1 + t2;                                                                         \
    } while (0)

/* The message schedule kept as a 16-word ring; word i (i >= 16) overwrites word i - 16. */
#define MAEL_SCHED(i)                                                                         \
    (w[(i) & 15] += MAEL_SSIG1(w[((i) - 2) & 15]) + w[((i) - 7) & 15] + MAEL_SSIG0(w[((i) - 15) & 15]))

#define MAEL_EIGHT_ROUNDS(i)                        \
    do {                                            \
        MAEL_ROUND(a, b, c, d, e, f, g, h, (i) + 0); \
        MAEL_ROUND(h, a, b, c, d, e, f, g, (i) + 1); \
        MAEL_ROUND(g, h, a, b, c, d, e, f, (i) + 2); \
        MAEL_ROUND(f, g, h, a, b, c, d, e, (i) + 3); \
        MAEL_ROUND(e, f, g, h, a, b, c, d, (i) + 4); \
        MAEL_ROUND(d, e, f, g, h, a, b, c, (i) + 5); \
        MAEL_ROUND(c, d, e, f, g, h, a, b, (i) + 6); \
        MAEL_ROUND(b, c, d, e, f, g, h, a, (i) + 7); \
    } while (0)

static void mael_sha256_blocks_portable(uint32_t state[8], const uint8_t *data, size_t nblocks)
{
    uint32_t w[16];
    while (nblocks--) {
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        int i;
        for (i = 0; i < 16; i++) {
            w[i] = mael_load_be32(data + 4 * i);
        }
        MAEL_EIGHT_ROUNDS(0);
        MAEL_EIGHT_ROUNDS(8);
        for (i = 16; i < 64; i += 8) {
            MAEL_SCHED(i + 0);
            MAEL_SCHED(i + 1);
            MAEL_SCHED(i + 2);
            MAEL_SCHED(i + 3);
            MAEL_SCHED(i + 4);
            MAEL_SCHED(i + 5);
            MAEL_SCHED(i + 6);
            MAEL_SCHED(i + 7);
            MAEL_EIGHT_ROUNDS(i);
        }
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
        data += 64;
    }
}

/* ---------------------------------------------------------------- SHA-NI -------------- */

#ifdef MAEL_SHA256_X86

/* Four rounds: the schedule words of `msg` plus their constants, two rounds per sha256rnds2. */
#define MAEL_NI_ROUNDS(i, msg)                                                          \
    do {                                                                                \
        __m128i wk = _mm_add_epi32((msg), _mm_load_si128((const __m128i *)&mael_sha256_k[4 * (i)])); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                                   \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));          \
    } while (0)

/* Finish the schedule words `next` (already holding sha256msg1 of its two predecessors four
 * steps back) from the current and previous ones. */
#define MAEL_NI_NEXT(next, cur, prev) \
    (next) = _mm_sha256msg2_epu32(_mm_add_epi32((next), _mm_alignr_epi8((cur), (prev), 4)), (cur))

#define MAEL_NI_MSG1(a, b) (a) = _mm_sha256msg1_epu32((a), (b))

__attribute__((target("sha,sse4.1,ssse3")))
static void mael_sha256_blocks_shani(uint32_t state[8], const uint8_t *data, size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    /* The instructions want the state as ABEF and CDGH words. */
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);

    while (nblocks--) {
        const __m128i abef_in = abef, cdgh_in = cdgh;
        __m128i w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 0)), bswap);
        __m128i w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16)), bswap);
        __m128i w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 32)), bswap);
        __m128i w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 48)), bswap);

        /* Sixteen four-round steps over a four-slot ring of schedule vectors: step i uses slot
         * i % 4, finishes slot (i + 1) % 4 for steps 3..14, and starts slot (i - 1) % 4 with
         * sha256msg1 for steps 1..12 (after NEXT has read its raw value). */
        MAEL_NI_ROUNDS(0, w0);
        MAEL_NI_ROUNDS(1, w1);  MAEL_NI_MSG1(w0, w1);
        MAEL_NI_ROUNDS(2, w2);  MAEL_NI_MSG1(w1, w2);
        MAEL_NI_ROUNDS(3, w3);  MAEL_NI_NEXT(w0, w3, w2); MAEL_NI_MSG1(w2, w3);
        MAEL_NI_ROUNDS(4, w0);  MAEL_NI_NEXT(w1, w0, w3); MAEL_NI_MSG1(w3, w0);
        MAEL_NI_ROUNDS(5, w1);  MAEL_NI_NEXT(w2, w1, w0); MAEL_NI_MSG1(w0, w1);
        MAEL_NI_ROUNDS(6, w2);  MAEL_NI_NEXT(w3, w2, w1); MAEL_NI_MSG1(w1, w2);
        MAEL_NI_ROUNDS(7, w3);  MAEL_NI_NEXT(w0, w3, w2); MAEL_NI_MSG1(w2, w3);
        MAEL_NI_ROUNDS(8, w0);  MAEL_NI_NEXT(w1, w0, w3); MAEL_NI_MSG1(w3, w0);
        MAEL_NI_ROUNDS(9, w1);  MAEL_NI_NEXT(w2, w1, w0); MAEL_NI_MSG1(w0, w1);
        MAEL_NI_ROUNDS(10, w2); MAEL_NI_NEXT(w3, w2, w1); MAEL_NI_MSG1(w1, w2);
        MAEL_NI_ROUNDS(11, w3); MAEL_NI_NEXT(w0, w3, w2); MAEL_NI_MSG1(w2, w3);
        MAEL_NI_ROUNDS(12, w0); MAEL_NI_NEXT(w1, w0, w3); MAEL_NI_MSG1(w3, w0);
        MAEL_NI_ROUNDS(13, w1); MAEL_NI_NEXT(w2, w1, w0);
        MAEL_NI_ROUNDS(14, w2); MAEL_NI_NEXT(w3, w2, w1);
        MAEL_NI_ROUNDS(15, w3);

        abef = _mm_add_epi32(abef, abef_in);
        cdgh = _mm_add_epi32(cdgh, cdgh_in);
        data += 64;
    }

    {
        __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
        __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0));
        _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));
    }
}

static int mael_sha256_cpu_has_shani(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    /* SSSE3 (ecx bit 9) and SSE4.1 (ecx bit 19) are used beside the SHA instructions. */
    if (!(ecx & (1u << 9)) || !(ecx & (1u << 19))) {
        return 0;
    }
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    return (ebx >> 29) & 1u;
}

#else

static int mael_sha256_cpu_has_shani(void)
{
    return 0;
}

#endif

/* ---------------------------------------------------------------- streaming API ------- */

/* Chosen once at module import (mael_sha256_select); only a test hook changes it later. */
static mael_sha256_blocks_fn mael_sha256_blocks = mael_sha256_blocks_portable;

/* Use SHA-NI when `want_shani` and the CPU has it. Returns whether SHA-NI is now in use. */
static int mael_sha256_select(int want_shani)
{
#ifdef MAEL_SHA256_X86
    if (want_shani && mael_sha256_cpu_has_shani()) {
        mael_sha256_blocks = mael_sha256_blocks_shani;
        return 1;
    }
#endif
    (void)want_shani;
    mael_sha256_blocks = mael_sha256_blocks_portable;
    return 0;
}

static int mael_sha256_using_shani(void)
{
#ifdef MAEL_SHA256_X86
    return mael_sha256_blocks == mael_sha256_blocks_shani;
#else
    return 0;
#endif
}

static void mael_sha256_init(mael_sha256_ctx *ctx)
{
    static const uint32_t iv[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(ctx->state, iv, sizeof iv);
    ctx->length = 0;
    ctx->used = 0;
}

static void mael_sha256_update(mael_sha256_ctx *ctx, const uint8_t *data, size_t len)
{
    mael_sha256_blocks_fn blocks = mael_sha256_blocks;
    ctx->length += len;
    if (ctx->used) {
        size_t take = 64 - ctx->used;
        if (take > len) {
            take = len;
        }
        memcpy(ctx->block + ctx->used, data, take);
        ctx->used += take;
        data += take;
        len -= take;
        if (ctx->used < 64) {
            return;
        }
        blocks(ctx->state, ctx->block, 1);
        ctx->used = 0;
    }
    if (len >= 64) {
        /* Whole blocks straight from the caller's memory: no copy for large inputs. */
        blocks(ctx->state, data, len / 64);
        data += len & ~(size_t)63;
        len &= 63;
    }
    if (len) {
        memcpy(ctx->block, data, len);
        ctx->used = len;
    }
}

/* Writes the digest of everything hashed so far; `ctx` is left as it was, so hashing may go on
 * (hashlib's digest() behaves the same). */
static void mael_sha256_final(const mael_sha256_ctx *ctx, uint8_t out[32])
{
    mael_sha256_ctx c = *ctx;
    uint8_t tail[128];
    size_t n = c.used;
    uint64_t bits = c.length * 8;
    int i;

    memcpy(tail, c.block, n);
    tail[n++] = 0x80;
    /* The 8-byte length must end a block: one block if it still fits, else two. */
    size_t total = (n + 8 <= 64) ? 64 : 128;
    memset(tail + n, 0, total - n);
    for (i = 0; i < 8; i++) {
        tail[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    }
    mael_sha256_blocks(c.state, tail, total / 64);
    for (i = 0; i < 8; i++) {
        mael_store_be32(out + 4 * i, c.state[i]);
    }
}

#endif /* MAELSTROM_SHA256_H */
