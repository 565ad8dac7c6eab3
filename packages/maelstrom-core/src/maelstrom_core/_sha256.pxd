# Declarations of _sha256.h, the C SHA-256 used by _digest_c.pyx. Nothing but the extern block.

from libc.stdint cimport uint8_t


cdef extern from "_sha256.h" nogil:
    ctypedef struct mael_sha256_ctx:
        pass

    void mael_sha256_init(mael_sha256_ctx* ctx)
    void mael_sha256_update(mael_sha256_ctx* ctx, const uint8_t* data, size_t length)
    void mael_sha256_final(const mael_sha256_ctx* ctx, uint8_t* out)
    int mael_sha256_cpu_has_shani()
    int mael_sha256_select(int want_shani)
    int mael_sha256_using_shani()
