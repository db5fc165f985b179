#ifndef CIMZLIB_SHIM_H
#define CIMZLIB_SHIM_H

#include <zlib.h>

// zlib's deflateInit2 / inflateInit2 are macros that Swift cannot import; these wrappers pass
// the header's version and stream size exactly as the macros do.

static inline int CIMZlib_deflateInit2(z_streamp strm, int level, int method, int windowBits,
                                       int memLevel, int strategy) {
    return deflateInit2_(strm, level, method, windowBits, memLevel, strategy,
                         ZLIB_VERSION, (int)sizeof(z_stream));
}

static inline int CIMZlib_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2_(strm, windowBits, ZLIB_VERSION, (int)sizeof(z_stream));
}

// crc32_combine is a macro for crc32_combine64 when off_t is 64-bit: call it from C.
static inline unsigned long CIMZlib_crc32Combine(unsigned long crc1, unsigned long crc2, long long length2) {
    return crc32_combine(crc1, crc2, (z_off_t)length2);
}

#endif
