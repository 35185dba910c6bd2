/* STUN server answers: RFC 8489 and classic requests, the four
 * CHANGE-REQUEST combinations, RESPONSE-PORT, PADDING, errors,
 * authentication and the amplification rule. */
#include "nat/stun_client.h"
#include "nat/stun_server.h"
#include "tests/unit/unit.h"

#include <stdlib.h>

static struct na_endpoint ep(const char *s)
{
	struct na_endpoint e;

	if (!na_endpoint_parse(&e, s, true))
		abort();
	return e;
}

static const uint8_t txid[16] = { 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
static const uint8_t classic_id[16] = { 2, 0x9a, 0x41, 0x17, 0x65, 0xa3, 0x0c, 0x5e,
					0x7b, 0x11, 0x0d, 0x33, 0x48, 0x6f, 0x2c, 0x01 };

/* Request options for req(). */
struct opts {
	bool classic, fingerprint, with_change;
	uint32_t change;
	uint16_t response_port, type;
	size_t padding, username;
	uint16_t extra_attr;		/* an extra empty attribute of this type */
	const char *key;
	bool sha256;
};

static size_t req(uint8_t *buf, size_t cap, const struct opts *o)
{
	struct stun_builder b;
	char user[256];

	stun_build_init(&b, buf, cap, o->type ? o->type : STUN_BINDING_REQUEST,
			o->classic ? classic_id : txid);
	if (o->with_change || o->change)
		stun_build_u32(&b, STUN_ATTR_CHANGE_REQUEST, o->change);
	if (o->response_port)
		stun_build_response_port(&b, o->response_port);
	if (o->username) {
		memset(user, 'u', o->username);
		user[o->username] = 0;
		stun_build_string(&b, STUN_ATTR_USERNAME, user);
	}
	if (o->extra_attr)
		stun_build_attr(&b, o->extra_attr, NULL, 0);
	if (o->padding)
		stun_build_padding(&b, o->padding);
	if (o->key && !o->sha256)
		stun_build_integrity(&b, o->key, strlen(o->key));
	if (o->key && o->sha256)
		stun_build_integrity_sha256(&b, o->key, strlen(o->key));
	if (o->fingerprint)
		stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

static struct stun_server_config cfg_alt(void)
{
	struct stun_server_config c = {
		.has_alternate = true,
		.primary = ep("198.18.0.10:3478"),
		.alternate = ep("198.18.0.11:3479"),
	};
	return c;
}

static const struct na_endpoint *A1P1(void)
{
	static struct na_endpoint e;
	e = ep("198.18.0.10:3478");
	return &e;
}

static void test_plain(void)
{
	struct stun_server_config cfg = { 0 };
	struct stun_server_reply r;
	struct stun_msg m;
	struct na_endpoint src = ep("203.0.113.5:40000");
	uint8_t in[64], out[256];
	size_t n = req(in, sizeof(in), &(struct opts){ 0 });

	enum stun_server_action act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 0, "plain request answered");
	CHECK(na_endpoint_equal(&r.from, A1P1()) && na_endpoint_equal(&r.to, &src),
	      "from the local endpoint, to the source");
	CHECK(stun_decode(&m, out, r.len, 0) == STUN_OK && m.type == STUN_BINDING_SUCCESS &&
	      !memcmp(m.txid, txid, 16), "success response with the request's id");
	CHECK(na_endpoint_equal(&m.xor_mapped, &src) && na_endpoint_equal(&m.mapped, &src),
	      "XOR-MAPPED-ADDRESS and MAPPED-ADDRESS");
	CHECK(!stun_has(&m, STUN_ATTR_OTHER_ADDRESS) && !stun_has(&m, STUN_ATTR_RESPONSE_ORIGIN) &&
	      !stun_has(&m, STUN_ATTR_FINGERPRINT), "no RFC 5780 attributes without an alternate");

	struct na_endpoint src6 = ep("[2001:db8::5]:40000"), local6 = ep("[2001:db8::1]:3478");
	act = stun_server_answer(&cfg, in, n, &src6, &local6, out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      na_endpoint_equal(&m.xor_mapped, &src6) && !stun_has(&m, STUN_ATTR_MAPPED_ADDRESS),
	      "IPv6: 20-byte request gets XOR-MAPPED-ADDRESS, MAPPED-ADDRESS shed");

	n = req(in, sizeof(in), &(struct opts){ .fingerprint = true });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      stun_check_fingerprint(&m) == STUN_OK, "FINGERPRINT answered with FINGERPRINT");
	in[n - 1] ^= 1;
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_DROP && !strcmp(r.why, "bad FINGERPRINT"), "bad FINGERPRINT dropped");

	n = req(in, sizeof(in), &(struct opts){ 0 });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, 40, &r);
	CHECK(act == STUN_SERVER_SEND && r.len == 32, "small output buffer: optional attributes shed");
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, 31, &r);
	CHECK(act == STUN_SERVER_DROP, "output buffer too small: no answer");
}

static void test_drops(void)
{
	struct stun_server_config cfg = cfg_alt();
	struct stun_server_reply r;
	struct na_endpoint src = ep("203.0.113.5:40000");
	uint8_t in[64], out[256];
	size_t n;
	enum stun_server_action act;

	n = req(in, sizeof(in), &(struct opts){ .type = STUN_BINDING_INDICATION });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_DROP && !strcmp(r.why, "not a request"), "indication dropped");
	n = req(in, sizeof(in), &(struct opts){ .type = STUN_BINDING_SUCCESS });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_DROP, "response dropped");
	n = req(in, sizeof(in), &(struct opts){ .type = 0x0003 });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_DROP && !strcmp(r.why, "not a Binding message"),
	      "other methods dropped");
	n = req(in, sizeof(in), &(struct opts){ 0 });
	act = stun_server_answer(&cfg, in, n - 1, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_DROP && !strcmp(r.why, "malformed STUN message"), "malformed dropped");
}

/* RFC 5780 Table 1, from each of the four local endpoints. */
static void test_change(bool classic)
{
	static const char *const locals[] = {
		"198.18.0.10:3478", "198.18.0.10:3479", "198.18.0.11:3478", "198.18.0.11:3479",
	};
	static const char *const others[] = {
		"198.18.0.11:3479", "198.18.0.11:3478", "198.18.0.10:3479", "198.18.0.10:3478",
	};
	struct stun_server_config cfg = cfg_alt();
	struct stun_server_reply r;
	struct stun_msg m;
	struct na_endpoint src = ep("203.0.113.5:40000");
	uint8_t in[64], out[256];
	const char *kind = classic ? "classic" : "RFC 8489";

	for (size_t l = 0; l < 4; l++) {
		struct na_endpoint local = ep(locals[l]), other = ep(others[l]);
		for (uint32_t f = 0; f < 4; f++) {
			uint32_t change = (f & 1 ? STUN_CHANGE_IP : 0) | (f & 2 ? STUN_CHANGE_PORT : 0);
			size_t n = req(in, sizeof(in), &(struct opts){ .classic = classic,
				       .with_change = true, .change = change });
			struct na_endpoint want = local;
			if (change & STUN_CHANGE_IP)
				want.ip = other.ip;
			if (change & STUN_CHANGE_PORT)
				want.port = other.port;
			enum stun_server_action act =
				stun_server_answer(&cfg, in, n, &src, &local, out, sizeof(out), &r);
			bool ok = act == STUN_SERVER_SEND &&
				  stun_decode(&m, out, r.len, STUN_DECODE_CLASSIC) == STUN_OK &&
				  na_endpoint_equal(&r.from, &want) && na_endpoint_equal(&r.to, &src);
			if (classic)
				ok = ok && !m.has_cookie && !memcmp(m.txid, classic_id, 16) &&
				     na_endpoint_equal(&m.mapped, &src) &&
				     na_endpoint_equal(&m.source, &want) &&
				     na_endpoint_equal(&m.changed, &other) &&
				     m.present == 0 + (1u << 0) + (1u << 2) + (1u << 3) && r.len == 56;
			else
				ok = ok && na_endpoint_equal(&m.xor_mapped, &src) &&
				     na_endpoint_equal(&m.mapped, &src) &&
				     na_endpoint_equal(&m.response_origin, &want) &&
				     na_endpoint_equal(&m.other, &other);
			char w[NA_ENDPOINT_STRLEN];
			CHECK(ok, "%s request to %s, change%s%s%s: from %s", kind, locals[l],
			      change & STUN_CHANGE_IP ? " IP" : "",
			      change & STUN_CHANGE_PORT ? " port" : "", change ? "" : " nothing",
			      na_endpoint_str(&want, w, sizeof(w)));
		}
	}
}

static void test_no_alternate(void)
{
	struct stun_server_config cfg = { 0 };
	struct stun_server_reply r;
	struct stun_msg m;
	struct na_endpoint src = ep("203.0.113.5:40000");
	uint8_t in[64], out[256];
	size_t n;
	enum stun_server_action act;

	n = req(in, sizeof(in), &(struct opts){ .change = STUN_CHANGE_IP });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 420 &&
	      stun_decode(&m, out, r.len, 0) == STUN_OK && m.type == STUN_BINDING_ERROR &&
	      m.error_code == 420 && m.unknown_list_len == 1 &&
	      m.unknown_list[0] == STUN_ATTR_CHANGE_REQUEST,
	      "CHANGE-REQUEST without alternate: 420 listing CHANGE-REQUEST (RFC 5780 section 6.1)");
	n = req(in, sizeof(in), &(struct opts){ .with_change = true });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 420, "even with no flags set");

	n = req(in, sizeof(in), &(struct opts){ .classic = true, .with_change = true });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && stun_decode(&m, out, r.len, STUN_DECODE_CLASSIC) == STUN_OK &&
	      na_endpoint_equal(&m.mapped, &src) && na_endpoint_equal(&m.source, A1P1()) &&
	      !stun_has(&m, STUN_ATTR_CHANGED_ADDRESS), "classic, no flags: MAPPED and SOURCE");
	n = req(in, sizeof(in), &(struct opts){ .classic = true, .change = STUN_CHANGE_PORT });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_DROP, "classic change request without alternate: silence");

	/* An IPv4 alternate does not serve IPv6 requests. */
	struct stun_server_config alt = cfg_alt();
	struct na_endpoint src6 = ep("[2001:db8::5]:40000"), local6 = ep("[2001:db8::1]:3478");
	n = req(in, sizeof(in), &(struct opts){ .change = STUN_CHANGE_IP });
	act = stun_server_answer(&alt, in, n, &src6, &local6, out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 420, "IPv6 request, IPv4 alternate: 420");
}

static void test_errors(void)
{
	struct stun_server_config cfg = cfg_alt();
	struct stun_server_reply r;
	struct stun_msg m;
	struct na_endpoint src = ep("203.0.113.5:40000");
	uint8_t in[1200], out[1600];
	size_t n;
	enum stun_server_action act;

	n = req(in, sizeof(in), &(struct opts){ .extra_attr = 0x0042, .fingerprint = true });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      m.error_code == 420 && m.unknown_list_len == 1 && m.unknown_list[0] == 0x0042 &&
	      stun_check_fingerprint(&m) == STUN_OK && na_endpoint_equal(&r.from, A1P1()),
	      "unknown comprehension-required: 420 with UNKNOWN-ATTRIBUTES");
	n = req(in, sizeof(in), &(struct opts){ .extra_attr = 0x8042 });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 0, "unknown optional attribute ignored");

	n = req(in, sizeof(in), &(struct opts){ .response_port = 5000, .padding = 100 });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 400 && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      m.error_code == 400, "RESPONSE-PORT with PADDING: 400");
	struct stun_builder b;
	stun_build_init(&b, in, sizeof(in), STUN_BINDING_REQUEST, txid);
	stun_build_response_port(&b, 0);
	n = stun_build_finish(&b);
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 400, "RESPONSE-PORT 0: 400");

	/* A 420 that would exceed the limit sheds its reason phrase first. */
	cfg.amp_factor = 1;
	n = req(in, sizeof(in), &(struct opts){ .extra_attr = 0x0042, .username = 12 });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.len <= n && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      m.error_code == 420 && m.error_reason_len == 0, "420 within the limit without a reason");
	n = req(in, sizeof(in), &(struct opts){ .extra_attr = 0x0042 });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_DROP, "420 that cannot fit the limit: silence");
}

static void test_response_port_padding(void)
{
	struct stun_server_config cfg = cfg_alt();
	struct stun_server_reply r;
	struct stun_msg m;
	struct na_endpoint src = ep("203.0.113.5:40000");
	uint8_t in[1600], out[1600];
	size_t n;
	enum stun_server_action act;

	n = req(in, sizeof(in), &(struct opts){ .response_port = 5555 });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.to.port == 5555 && na_ip_equal(&r.to.ip, &src.ip) &&
	      na_endpoint_equal(&r.from, A1P1()), "RESPONSE-PORT: same address, that port");
	CHECK(stun_decode(&m, out, r.len, 0) == STUN_OK && na_endpoint_equal(&m.xor_mapped, &src),
	      "RESPONSE-PORT: mapped address is still the source");

	n = req(in, sizeof(in), &(struct opts){ .response_port = 5555, .change = STUN_CHANGE_PORT });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.to.port == 5555 && r.from.port == 3479,
	      "RESPONSE-PORT with change port");

	n = req(in, sizeof(in), &(struct opts){ .padding = 1400, .fingerprint = true });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.len <= n && r.len + 4 > n,
	      "PADDING: response as large as the request (%zu vs %zu)", r.len, n);
	CHECK(stun_decode(&m, out, r.len, 0) == STUN_OK && stun_has(&m, STUN_ATTR_PADDING) &&
	      stun_has(&m, STUN_ATTR_MAPPED_ADDRESS) && stun_has(&m, STUN_ATTR_OTHER_ADDRESS) &&
	      stun_check_fingerprint(&m) == STUN_OK, "PADDING reflected, all attributes kept");

	n = req(in, sizeof(in), &(struct opts){ .padding = 4 });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      stun_has(&m, STUN_ATTR_PADDING) && m.padding_len == 0,
	      "small PADDING: empty PADDING in a normal-sized response");
}

static void test_amplification(void)
{
	struct stun_server_config cfg = cfg_alt();
	struct stun_server_reply r;
	struct stun_msg m;
	struct na_endpoint src = ep("203.0.113.5:40000");
	uint8_t in[256], out[256];
	size_t n;
	enum stun_server_action act;

	cfg.software = "natagent test";	/* 4 + 16 bytes */

	/* Default factor 3: 20-byte request, limit 60. */
	n = req(in, sizeof(in), &(struct opts){ 0 });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.len <= 3 * n && stun_decode(&m, out, r.len, 0) == STUN_OK,
	      "factor 3: 20-byte request answered in %zu bytes", r.len);
	CHECK(!stun_has(&m, STUN_ATTR_SOFTWARE) && !stun_has(&m, STUN_ATTR_MAPPED_ADDRESS) &&
	      stun_has(&m, STUN_ATTR_XOR_MAPPED_ADDRESS) && stun_has(&m, STUN_ATTR_OTHER_ADDRESS) &&
	      stun_has(&m, STUN_ATTR_RESPONSE_ORIGIN), "SOFTWARE and MAPPED-ADDRESS shed first");

	/* Factor 1: never larger than the request. */
	cfg.amp_factor = 1;
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_DROP && !strcmp(r.why, "response would exceed the amplification limit"),
	      "factor 1: a bare 20-byte request gets no answer");
	n = req(in, sizeof(in), &(struct opts){ .username = 48 });	/* 72 bytes */
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.len == 68 && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      !stun_has(&m, STUN_ATTR_SOFTWARE) && stun_has(&m, STUN_ATTR_MAPPED_ADDRESS),
	      "factor 1, 72-byte request: everything but SOFTWARE");
	n = req(in, sizeof(in), &(struct opts){ .username = 68 });	/* 92 bytes */
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.len == 88 && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      stun_has(&m, STUN_ATTR_SOFTWARE), "factor 1, 92-byte request: SOFTWARE fits");
	n = req(in, sizeof(in), &(struct opts){ .username = 36 });	/* 60 bytes */
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.len == 56 && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      !stun_has(&m, STUN_ATTR_MAPPED_ADDRESS) && stun_has(&m, STUN_ATTR_XOR_MAPPED_ADDRESS),
	      "factor 1, 60-byte request: MAPPED-ADDRESS dropped before XOR-MAPPED-ADDRESS");
	n = req(in, sizeof(in), &(struct opts){ .username = 12 });	/* 36 bytes */
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.len == 32 && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      m.present == (1u << 1), "factor 1, 36-byte request: XOR-MAPPED-ADDRESS alone");

	/* stun-client's 28-byte classic request needs factor 2 for its 56-byte
	 * answer; at factor 1 not even MAPPED-ADDRESS alone (32) fits. */
	n = req(in, sizeof(in), &(struct opts){ .classic = true, .with_change = true });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_DROP, "factor 1, classic 28-byte request: no answer");
	cfg.amp_factor = 2;
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.len == 56, "factor 2, classic: all three addresses");
}

static const void *lookup(void *ctx, const uint8_t *user, size_t len, size_t *key_len)
{
	(void)ctx;
	if (len == 8 && !memcmp(user, "uuuuuuuu", 8)) {
		*key_len = 6;
		return "secret";
	}
	return NULL;
}

static void test_auth(void)
{
	struct stun_server_config cfg = { .key = lookup };
	struct stun_server_reply r;
	struct stun_msg m;
	struct na_endpoint src = ep("203.0.113.5:40000");
	uint8_t in[256], out[256];
	size_t n;
	enum stun_server_action act;

	n = req(in, sizeof(in), &(struct opts){ .username = 8 });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 400, "no MESSAGE-INTEGRITY: 400");
	n = req(in, sizeof(in), &(struct opts){ .username = 9, .key = "secret" });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 401, "unknown user: 401");
	n = req(in, sizeof(in), &(struct opts){ .username = 8, .key = "secreT" });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 401 && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      !stun_has(&m, STUN_ATTR_MESSAGE_INTEGRITY), "wrong key: 401 without integrity");
	n = req(in, sizeof(in), &(struct opts){ .username = 8, .key = "secret", .fingerprint = true });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 0 && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      stun_check_integrity(&m, "secret", 6) == STUN_OK && stun_check_fingerprint(&m) == STUN_OK,
	      "authenticated: success with MESSAGE-INTEGRITY and FINGERPRINT");
	n = req(in, sizeof(in), &(struct opts){ .username = 8, .key = "secret", .sha256 = true });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 0 && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      stun_has(&m, STUN_ATTR_MESSAGE_INTEGRITY_SHA256) &&
	      !stun_has(&m, STUN_ATTR_MESSAGE_INTEGRITY) && stun_check_integrity(&m, "secret", 6) == STUN_OK,
	      "MESSAGE-INTEGRITY-SHA256 answered in kind");
	n = req(in, sizeof(in), &(struct opts){ .username = 8, .key = "secret", .extra_attr = 0x0042 });
	act = stun_server_answer(&cfg, in, n, &src, A1P1(), out, sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND && r.error_code == 420 && stun_decode(&m, out, r.len, 0) == STUN_OK &&
	      stun_check_integrity(&m, "secret", 6) == STUN_OK, "authenticated 420 carries integrity");
}

/* The client and server agree with each other. */
static void test_with_client(void)
{
	struct stun_server_config cfg = cfg_alt();
	struct stun_client c;
	struct stun_client_event ev;
	struct stun_server_reply r;
	struct na_endpoint src = ep("203.0.113.5:40000"), other = ep("198.18.0.11:3479");
	uint8_t out[256];

	stun_client_init(&c, NULL, NULL, NULL);
	stun_client_add_server(&c, A1P1());
	stun_client_start(&c, &(struct stun_client_request){ .change = STUN_CHANGE_IP,
			  .fingerprint = true }, 0, &ev);
	enum stun_server_action act = stun_server_answer(&cfg, ev.data, ev.len, &src, &ev.to, out,
							 sizeof(out), &r);
	CHECK(act == STUN_SERVER_SEND, "server answers the client's change request");
	enum stun_client_event_type t = stun_client_input(&c, out, r.len, &r.from, 1000, &ev);
	CHECK(t == STUN_CLIENT_SUCCESS && na_endpoint_equal(&ev.result.mapped, &src) &&
	      ev.result.has_other && na_endpoint_equal(&ev.result.other, &other) &&
	      ev.result.has_origin && na_endpoint_equal(&ev.result.origin, &r.from) &&
	      na_endpoint_equal(&ev.result.from, &r.from),
	      "client reads mapped, OTHER-ADDRESS and RESPONSE-ORIGIN");
}

int main(void)
{
	test_plain();
	test_drops();
	test_change(false);
	test_change(true);
	test_no_alternate();
	test_errors();
	test_response_port_padding();
	test_amplification();
	test_auth();
	test_with_client();
	return unit_done();
}
