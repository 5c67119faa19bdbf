/*
 * crc32c.h: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of every WAL record and snapshot file.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it (checked at each call
 * with __builtin_cpu_supports, which is a load and a test), otherwise a table.
 * Both give identical results; thread-safe; no state.
 */
#ifndef CORD_COMMON_CRC32C_H
#define CORD_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * crc32c_extend: continue a CRC over more bytes.
 * Takes: the CRC of the bytes so far (0 for none), a buffer (may be NULL
 * when len is 0) and its length.
 * Returns: the CRC of (bytes so far || buf), so that
 * crc32c_extend(crc32c(a, n), b, m) == CRC of a followed by b.
 */
uint32_t crc32c_extend(uint32_t crc, const void *buf, size_t len);

/* crc32c: CRC-32C of one buffer. crc32c("123456789", 9) == 0xE3069283. */
uint32_t crc32c(const void *buf, size_t len);

/* crc32c_extend_portable: the table implementation, always; for tests and
 * benchmarks that compare it with the hardware path. */
uint32_t crc32c_extend_portable(uint32_t crc, const void *buf, size_t len);

/* crc32c_hardware_available: 1 if crc32c_extend uses the CPU instruction. */
int crc32c_hardware_available(void);

#endif
