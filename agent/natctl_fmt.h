/* How natctl prints times and sizes, as wg(8) does. */
#ifndef NATAGENT_AGENT_NATCTL_FMT_H
#define NATAGENT_AGENT_NATCTL_FMT_H

#include <stddef.h>
#include <stdint.h>

/* "1 hour, 2 minutes, 3 seconds"; "0 seconds". */
const char *natctl_duration(uint64_t secs, char *buf, size_t len);
/* "512 B", "1.20 MiB". */
const char *natctl_bytes(uint64_t b, char *buf, size_t len);

#endif
