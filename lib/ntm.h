/*
 * ntm.h - public API of libntm: the protocol core (ntm-core.h) and the I/O
 * glue (ntm-io.h). Programs include this; lib/core/ includes ntm-core.h only.
 */
#ifndef NTM_H
#define NTM_H

#include "ntm-core.h"
#include "ntm-io.h"

#endif
