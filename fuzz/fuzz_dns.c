/*
 * fuzz_dns.c - libFuzzer harness for the DC's authoritative DNS server
 * (cmd/ntm-dc/dns.c): the input is one query datagram, sent from loopback
 * to the server dc_dns_start() bound for the domain dc1.ntm.test (two
 * clients in its table, _ntm._udp known, response-rate limiting on but
 * high), and handled by the daemon's own path: the kernel filter, evdns's
 * parser, then on_request() and its answers.
 *
 * An answer must come back to the query's ID, stay within 512 bytes (evdns
 * truncates above), and an ANY must not be answered with more than a
 * question's worth plus the SOA (RFC 8482: no amplification).
 *
 * Sources: cmd/ntm-dc/dns.c cmd/common/misc.c cmd/common/log.c
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "dc.h"
#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct srv srv;
static struct dc dc;
static int cfd = -1;
static struct sockaddr_in to;

static void
setup(void)
{
	struct sockaddr_in u = { .sin_family = AF_INET, .sin_port = htons(4500) };
	char err[256];

	log_init("fuzz_dns", 0);
	srv.conf.name = "dc1.ntm.test";
	srv.conf.path = "fuzz";
	snprintf(srv.conf.listen_addr, sizeof(srv.conf.listen_addr), "127.0.0.1");
	srv.conf.listen_port = 8443;
	srv.conf.dns_listen = "127.0.0.1:0";
	srv.conf.dns_addr6 = "fd00::53";
	srv.conf.dns_rate = 1000000;
	srv.conf.dns_rate_total = 1000000;
	srv.port = 8443;
	if ((srv.base = event_base_new()) == NULL)
		abort();
	dc.srv = &srv;
	if (sqlite3_open(":memory:", &dc.db) != SQLITE_OK ||
	    ntm_db_exec(dc.db, "CREATE TABLE clients (fqdn TEXT PRIMARY KEY, vip4 TEXT, "
	    "vip6 TEXT); INSERT INTO clients VALUES "
	    "('alice.dc1.ntm.test', '100.64.0.2', 'fd00::2'), "
	    "('bob.dc1.ntm.test', '100.64.0.3', NULL)") < 0)
		abort();
	inet_pton(AF_INET, "127.0.0.1", &u.sin_addr);
	dc_dns_set_udp(&dc, (struct sockaddr *)&u);
	if (dc_dns_start(&dc, err, sizeof(err)) < 0)
		abort();
	/* the bound port: the one socket of ours with a DNS server on it */
	to.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
	for (int fd = 3; fd < 64; fd++) {
		struct sockaddr_in b;
		socklen_t len = sizeof(b);
		int type;
		socklen_t tl = sizeof(type);

		if (getsockname(fd, (struct sockaddr *)&b, &len) == 0 && b.sin_family == AF_INET &&
		    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_DGRAM &&
		    b.sin_addr.s_addr == to.sin_addr.s_addr) {
			to.sin_port = b.sin_port;
			break;
		}
	}
	if (to.sin_port == 0 ||
	    (cfd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		abort();
	event_base_loop(srv.base, EVLOOP_NONBLOCK);	/* the server's event added */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t r[4096];
	ssize_t n;

	if (cfd < 0)
		setup();
	if (size > 1400)
		return 0;
	/* what a previous query left (an answer evdns sent late) */
	while (recv(cfd, r, sizeof(r), 0) > 0)
		;
	if (sendto(cfd, data, size, 0, (struct sockaddr *)&to, sizeof(to)) != (ssize_t)size)
		return 0;
	for (int i = 0; i < 4; i++)
		event_base_loop(srv.base, EVLOOP_NONBLOCK);
	if ((n = recv(cfd, r, sizeof(r), 0)) <= 0)
		return 0;
	if (n < 12 || n > 512 || size < 12 || memcmp(r, data, 2) != 0)
		abort();
	/* ANY (type 255 in the one question): HINFO or nothing, SOA at most */
	if (size >= 17 && r[5] == 1 && (r[7] > 1 || r[9] > 1 || r[11] > 0)) {
		size_t q = 12;

		while (q < size && data[q] != 0 && (data[q] & 0xc0) == 0)
			q += 1 + data[q];
		if (q + 2 < size && data[q] == 0 && data[q + 1] == 0 && data[q + 2] == 255)
			abort();
	}
	return 0;
}
