/* fuzz_ippkt.c - libFuzzer harness for the inner IP packet parser: any
 * packet that parses as UDP or echo rebuilds to one that parses the same. */
#include <stdlib.h>
#include <string.h>

#include "ippkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[65536 + 64];
	struct ntm_ip ip, back;
	int n;

	if (ntm_ip_parse(&ip, data, size) != 0)
		return 0;
	if (ip.payload < data || ip.payload + ip.len > data + size)
		abort();
	if (ip.proto != NTM_PROTO_UDP && !(ip.is_echo && ip.icmp_code == 0))
		return 0;
	if ((n = ntm_ip_build(out, sizeof(out), &ip)) < 0)
		return 0;	/* e.g. an echo with a non-zero code is not built */
	if (ntm_ip_parse(&back, out, (size_t)n) != 0 || back.proto != ip.proto ||
	    back.len != ip.len || memcmp(back.payload, ip.payload, ip.len) != 0 ||
	    memcmp(back.src, ip.src, 16) != 0 || memcmp(back.dst, ip.dst, 16) != 0 ||
	    back.sport != ip.sport || back.dport != ip.dport ||
	    back.echo_id != ip.echo_id || back.echo_seq != ip.echo_seq)
		abort();
	if (ip.is_echo && (n = ntm_ip_echo_reply(out, sizeof(out), &ip)) > 0 &&
	    ntm_ip_parse(&back, out, (size_t)n) != 0)
		abort();
	return 0;
}
