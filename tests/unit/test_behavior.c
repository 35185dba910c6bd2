/* RFC 5780 discovery against a simulated NAT in virtual time: the real
 * answering logic of nat/stun_server.c behind a NAT model whose mapping,
 * filtering, port allocation, hairpinning and mapping lifetime are set per
 * case. Each case checks that discovery reports what the model does. */
#include <stdlib.h>

#include "nat/behavior.h"
#include "nat/stun_server.h"
#include "tests/unit/unit.h"

struct nat_model {
	enum nat_mapping mapping;
	enum nat_filtering filtering;
	enum nat_alloc alloc;
	bool hairpin;
	uint64_t lifetime_ms; /* 0: forever */
	bool drop_all;        /* a dead server */
};

struct mapping {
	struct na_endpoint inside, remote, outside;
	struct na_endpoint contacted[8];
	unsigned n_contacted;
	uint64_t last;
};

struct sim {
	struct nat_model m;
	struct na_ip public_ip;
	struct mapping maps[64];
	unsigned n_maps;
	uint16_t next_port;
	struct stun_server_config srv;
	struct nat_behavior b;
	struct nat_behavior_opts o;
	uint64_t now;
	unsigned delivered[NAT_BEH_MAX_SOCKS];
};

static bool live(const struct sim *s, const struct mapping *mp)
{
	return !s->m.lifetime_ms || s->now - mp->last < s->m.lifetime_ms * 1000000ull;
}

static bool same_key(const struct sim *s, const struct mapping *mp, const struct na_endpoint *in,
		     const struct na_endpoint *to)
{
	if (!na_endpoint_equal(&mp->inside, in))
		return false;
	switch (s->m.mapping) {
	case NAT_MAPPING_ADM: return na_ip_equal(&mp->remote.ip, &to->ip);
	case NAT_MAPPING_APDM: return na_endpoint_equal(&mp->remote, to);
	default: return true;
	}
}

static struct mapping *outbound(struct sim *s, const struct na_endpoint *in, const struct na_endpoint *to)
{
	struct mapping *mp = NULL;

	for (unsigned i = 0; i < s->n_maps; i++)
		if (same_key(s, &s->maps[i], in, to) && live(s, &s->maps[i]))
			mp = &s->maps[i];
	if (!mp) {
		mp = &s->maps[s->n_maps++ % 64];
		memset(mp, 0, sizeof(*mp));
		mp->inside = *in;
		mp->remote = *to;
		mp->outside.ip = s->public_ip;
		switch (s->m.alloc) {
		case NAT_ALLOC_PRESERVING: mp->outside.port = in->port; break;
		case NAT_ALLOC_SEQUENTIAL: mp->outside.port = s->next_port; s->next_port += 2; break;
		default: mp->outside.port = (uint16_t)(20000 + rand() % 40000); break;
		}
	}
	mp->last = s->now;
	if (mp->n_contacted < 8)
		mp->contacted[mp->n_contacted++] = *to;
	return mp;
}

static bool allowed(const struct sim *s, const struct mapping *mp, const struct na_endpoint *from)
{
	for (unsigned i = 0; i < mp->n_contacted; i++) {
		if (s->m.filtering == NAT_FILTERING_EIF)
			return true;
		if (s->m.filtering == NAT_FILTERING_ADF && na_ip_equal(&mp->contacted[i].ip, &from->ip))
			return true;
		if (na_endpoint_equal(&mp->contacted[i], from))
			return true;
	}
	return false;
}

/* Returns the socket a packet to the NAT's outside address reaches, or -1. */
static int inbound(struct sim *s, const struct na_endpoint *from, const struct na_endpoint *to)
{
	for (unsigned i = 0; i < s->n_maps && i < 64; i++) {
		struct mapping *mp = &s->maps[i];
		if (!na_endpoint_equal(&mp->outside, to) || !live(s, mp) || !allowed(s, mp, from))
			continue;
		for (unsigned k = 0; k < s->o.n_socks; k++)
			if (na_endpoint_equal(&s->o.local[k], &mp->inside))
				return (int)k;
	}
	return -1;
}

static void deliver(struct sim *s, const struct nat_behavior_send *snd)
{
	const struct na_endpoint *in = &s->o.local[snd->sock];
	struct mapping *mp = s->m.mapping == NAT_MAPPING_NONE ? NULL : outbound(s, in, &snd->to);
	struct na_endpoint src = mp ? mp->outside : *in;
	uint8_t resp[512];
	struct stun_server_reply r;
	int k;

	if (na_ip_equal(&snd->to.ip, &s->public_ip)) {
		/* Hairpin: the NAT loops it back as if from our mapping. */
		k = s->m.hairpin ? inbound(s, &src, &snd->to) : -1;
		if (k >= 0 && nat_behavior_input(&s->b, (unsigned)k, snd->data, snd->len, &src, s->now))
			s->delivered[k]++;
		return;
	}
	if (s->m.drop_all)
		return;
	if (stun_server_answer(&s->srv, snd->data, snd->len, &src, &snd->to, resp, sizeof(resp), &r) !=
	    STUN_SERVER_SEND)
		return;
	if (s->m.mapping == NAT_MAPPING_NONE) {
		for (k = 0; k < (int)s->o.n_socks; k++)
			if (na_endpoint_equal(&s->o.local[k], &r.to))
				break;
		if (k == (int)s->o.n_socks)
			return;
	} else {
		k = inbound(s, &r.from, &r.to);
	}
	if (k >= 0 && nat_behavior_input(&s->b, (unsigned)k, resp, r.len, &r.from, s->now))
		s->delivered[k]++;
}

static const struct nat_report *run(struct sim *s, const struct nat_model *m, bool lifetime)
{
	const struct nat_behavior_send *snd;

	memset(s, 0, sizeof(*s));
	s->m = *m;
	s->next_port = 40000;
	s->now = 1000000000ull;
	na_ip_parse(&s->public_ip, m->mapping == NAT_MAPPING_NONE ? "10.0.0.2" : "198.18.5.1");
	na_endpoint_parse(&s->srv.primary, "198.18.0.10:3478", false);
	na_endpoint_parse(&s->srv.alternate, "198.18.0.11:3479", false);
	s->srv.has_alternate = true;
	nat_behavior_opts_default(&s->o);
	s->o.server = s->srv.primary;
	s->o.n_socks = 4;
	for (unsigned i = 0; i < 4; i++) {
		na_endpoint_parse(&s->o.local[i], "10.0.0.2:1", false);
		s->o.local[i].port = (uint16_t)(5000 + 7 * i);
	}
	s->o.lifetime = lifetime;
	s->o.n_gaps = 4;
	for (unsigned i = 0; i < 4; i++)
		s->o.gaps_ms[i] = 1000ull << i; /* 1, 2, 4, 8 s */
	nat_behavior_start(&s->b, &s->o, s->now);
	for (int steps = 0; steps < 10000 && !nat_behavior_done(&s->b); steps++) {
		if (nat_behavior_next_send(&s->b, &snd)) {
			deliver(s, snd);
			continue;
		}
		uint64_t d = nat_behavior_deadline(&s->b);
		if (d == UINT64_MAX)
			break;
		if (d > s->now)
			s->now = d;
		nat_behavior_on_timer(&s->b, s->now);
	}
	return nat_behavior_report(&s->b);
}

static struct sim sim;

static void test_kinds(void)
{
	static const struct {
		const char *name;
		struct nat_model m;
		const char *classic;
	} cases[] = {
		{ "no NAT", { NAT_MAPPING_NONE, NAT_FILTERING_EIF, NAT_ALLOC_PRESERVING, true, 0, false }, "open internet" },
		{ "full cone", { NAT_MAPPING_EIM, NAT_FILTERING_EIF, NAT_ALLOC_PRESERVING, true, 0, false }, "full cone" },
		{ "restricted", { NAT_MAPPING_EIM, NAT_FILTERING_ADF, NAT_ALLOC_PRESERVING, false, 0, false }, "restricted cone" },
		{ "port restricted", { NAT_MAPPING_EIM, NAT_FILTERING_APDF, NAT_ALLOC_SEQUENTIAL, false, 0, false }, "port-restricted cone" },
		{ "address-dependent mapping", { NAT_MAPPING_ADM, NAT_FILTERING_APDF, NAT_ALLOC_SEQUENTIAL, false, 0, false }, "symmetric" },
		{ "symmetric", { NAT_MAPPING_APDM, NAT_FILTERING_APDF, NAT_ALLOC_RANDOM, false, 0, false }, "symmetric" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		const struct nat_report *r = run(&sim, &cases[i].m, false);
		CHECK(r->error == NULL && r->has_mapped, "%s: discovery completes", cases[i].name);
		CHECK_EQ_INT(r->mapping, cases[i].m.mapping, "mapping classified");
		CHECK_EQ_INT(r->filtering, cases[i].m.filtering, "filtering classified");
		CHECK_EQ_INT(r->alloc, cases[i].m.alloc, "allocation classified");
		if (cases[i].m.alloc == NAT_ALLOC_SEQUENTIAL)
			CHECK_EQ_INT(r->alloc_delta, 2, "sequential delta found");
		if (cases[i].m.mapping != NAT_MAPPING_NONE)
			CHECK_EQ_INT(r->hairpin, cases[i].m.hairpin, "hairpin classified");
		CHECK_EQ_STR(nat_report_classic_name(r), cases[i].classic, "classic name");
		CHECK(!r->lifetime_measured, "lifetime not measured unless asked");
	}
}

static void test_lifetime(void)
{
	struct nat_model m = { NAT_MAPPING_EIM, NAT_FILTERING_APDF, NAT_ALLOC_PRESERVING, false, 3000, false };
	const struct nat_report *r = run(&sim, &m, true);

	CHECK(r->lifetime_measured, "lifetime measured");
	CHECK_EQ_INT(r->lifetime_alive_ms, 2000, "survived the 2 s gap");
	CHECK_EQ_INT(r->lifetime_dead_ms, 4000, "died in the 4 s gap (lifetime 3 s)");
	CHECK(sim.delivered[0] > 0, "probe answers reached socket X, not Y");

	m.lifetime_ms = 0;
	r = run(&sim, &m, true);
	CHECK(r->lifetime_measured && r->lifetime_alive_ms == 8000 && r->lifetime_dead_ms == 0,
	      "a mapping that never dies survives every gap");

	m.mapping = NAT_MAPPING_APDM;
	m.alloc = NAT_ALLOC_RANDOM;
	m.lifetime_ms = 1500;
	r = run(&sim, &m, true);
	CHECK(r->lifetime_alive_ms == 1000 && r->lifetime_dead_ms == 2000,
	      "symmetric NAT: lifetime measured too (answers come from A1:P1)");
}

static void test_dead_server(void)
{
	struct nat_model m = { NAT_MAPPING_EIM, NAT_FILTERING_EIF, NAT_ALLOC_PRESERVING, false, 0, true };
	const struct nat_report *r = run(&sim, &m, false);

	CHECK_EQ_STR(r->error, "no answer from the STUN server", "dead server reported");
	CHECK_EQ_INT(r->step_ns[NAT_STEP_MAPPING], 39500000000ull, "gave up after RFC 8489's 39.5 s");
}

static void test_no_alternate(void)
{
	struct nat_model m = { NAT_MAPPING_EIM, NAT_FILTERING_EIF, NAT_ALLOC_PRESERVING, false, 0, false };
	const struct nat_behavior_send *snd;

	/* Same as run() but the server has one address. */
	memset(&sim, 0, sizeof(sim));
	sim.m = m;
	sim.now = 1;
	na_ip_parse(&sim.public_ip, "198.18.5.1");
	na_endpoint_parse(&sim.srv.primary, "198.18.0.10:3478", false);
	nat_behavior_opts_default(&sim.o);
	sim.o.server = sim.srv.primary;
	sim.o.n_socks = 1;
	na_endpoint_parse(&sim.o.local[0], "10.0.0.2:5000", false);
	nat_behavior_start(&sim.b, &sim.o, sim.now);
	for (int i = 0; i < 1000 && !nat_behavior_done(&sim.b); i++) {
		if (nat_behavior_next_send(&sim.b, &snd)) {
			deliver(&sim, snd);
			continue;
		}
		sim.now = nat_behavior_deadline(&sim.b);
		nat_behavior_on_timer(&sim.b, sim.now);
	}
	const struct nat_report *r = nat_behavior_report(&sim.b);
	CHECK(r->has_mapped && !r->has_other, "single-address server: mapping only");
	CHECK_EQ_INT(r->mapping, NAT_MAPPING_UNKNOWN, "mapping behaviour unknown without OTHER-ADDRESS");
	CHECK_EQ_INT(r->filtering, NAT_FILTERING_UNKNOWN, "filtering unknown without OTHER-ADDRESS");
}

int main(void)
{
	srand(7);
	test_kinds();
	test_lifetime();
	test_dead_server();
	test_no_alternate();
	return unit_done();
}
