/*
 * stack.h - lwIP-typed helpers of the user-space stack (stack.c), for
 * the files that talk to lwIP themselves (streams.c).
 */
#ifndef NTM_AGENT_IP_H
#define NTM_AGENT_IP_H

#include <stdint.h>

#include "lwip/ip_addr.h"

/* version 4 or 6 and 4 or 16 address bytes -> an lwIP address */
void agent_ip_addr(int version, const uint8_t *b, ip_addr_t *out);
/* an lwIP address -> 16 bytes (IPv4 in the first 4); returns 4 or 6 */
int  agent_ip_from(const ip_addr_t *in, uint8_t out[16]);

struct agent;
struct bufferevent;
struct tcp_pcb;
/* A connection accepted by a -R forward, joined to a socket that is still
 * connecting (streams.c). */
int  agent_stream_adopt(struct agent *a, struct bufferevent *bev, struct tcp_pcb *pcb,
    int fwd);

/* A listening pcb on TCP port of our vIPs (SO_REUSEADDR), or NULL. */
struct tcp_pcb *agent_ip_listen(uint16_t port, uint8_t backlog);

#endif
