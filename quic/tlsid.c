#include "quic/tlsid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/base64.h>
#include <nettle/eddsa.h>
#include <nettle/hmac.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* TLS 1.3 only, no middlebox compatibility records (QUIC has none), raw
 * public keys both ways, Ed25519 signatures only. */
static const char quic_tls_priority[] =
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:"
	"-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
	"-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
	"-SIGN-ALL:+SIGN-EDDSA-ED25519:"
	"-CTYPE-ALL:+CTYPE-CLI-RAWPK:+CTYPE-SRV-RAWPK:"
	"%DISABLE_TLS13_COMPAT_MODE";

/* RFC 8410: SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING key } and
 * SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING {
 * OCTET STRING seed } }. */
static const uint8_t spki_prefix[12] = {
	0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
};
static const uint8_t pkcs8_prefix[16] = {
	0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
	0x04, 0x22, 0x04, 0x20,
};

struct quic_tls_cred {
	gnutls_certificate_credentials_t gc;
};

void quic_tls_spki_der(uint8_t out[QUIC_TLS_SPKI_LEN], const uint8_t pub[QUIC_KEY_LEN])
{
	memcpy(out, spki_prefix, sizeof(spki_prefix));
	memcpy(out + sizeof(spki_prefix), pub, QUIC_KEY_LEN);
}

void quic_tls_pkcs8_der(uint8_t out[QUIC_TLS_PKCS8_LEN], const uint8_t seed[QUIC_KEY_LEN])
{
	memcpy(out, pkcs8_prefix, sizeof(pkcs8_prefix));
	memcpy(out + sizeof(pkcs8_prefix), seed, QUIC_KEY_LEN);
}

bool quic_tls_spki_key(uint8_t key[QUIC_KEY_LEN], const uint8_t *der, size_t len)
{
	if (len != QUIC_TLS_SPKI_LEN || memcmp(der, spki_prefix, sizeof(spki_prefix)) != 0)
		return false;
	memcpy(key, der + sizeof(spki_prefix), QUIC_KEY_LEN);
	return true;
}

void quic_tls_reset_secret(uint8_t out[32], const uint8_t seed[QUIC_KEY_LEN])
{
	static const char label[] = "natagent quic stateless reset v1";
	struct hmac_sha256_ctx h;

	hmac_sha256_set_key(&h, QUIC_KEY_LEN, seed);
	hmac_sha256_update(&h, sizeof(label) - 1, (const uint8_t *)label);
	hmac_sha256_digest(&h, 32, out);
}

void quic_tls_key_str(char out[QUIC_KEY_B64_LEN], const uint8_t key[QUIC_KEY_LEN])
{
	base64_encode_raw(out, QUIC_KEY_LEN, key);
	out[QUIC_KEY_B64_LEN - 1] = 0;
}

const char *quic_tls_alert_name(uint8_t alert)
{
	static const struct { uint8_t code; const char *name; } names[] = {
		{ 0, "close notify" },         { 10, "unexpected message" },
		{ 20, "bad record mac" },      { 22, "record overflow" },
		{ 40, "handshake failure" },   { 42, "bad certificate" },
		{ 43, "unsupported certificate" }, { 44, "certificate revoked" },
		{ 45, "certificate expired" }, { 46, "certificate unknown" },
		{ 47, "illegal parameter" },   { 48, "unknown ca" },
		{ 49, "access denied" },       { 50, "decode error" },
		{ 51, "decrypt error" },       { 70, "protocol version" },
		{ 71, "insufficient security" }, { 80, "internal error" },
		{ 86, "inappropriate fallback" }, { 90, "user canceled" },
		{ 109, "missing extension" },  { 110, "unsupported extension" },
		{ 112, "unrecognized name" },  { 113, "bad certificate status response" },
		{ 115, "unknown psk identity" }, { 116, "certificate required" },
		{ 120, "no application protocol" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].code == alert)
			return names[i].name;
	return "unknown";
}

/* Called by GnuTLS once the peer's certificate message is in, on both
 * sides. Non-zero fails the handshake with alert 42 (bad certificate). */
static int quic_tls_verify(gnutls_session_t gs)
{
	ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(gs);
	struct quic_tls_session *t = container_of(ref, struct quic_tls_session, conn_ref);
	const gnutls_datum_t *peers;
	unsigned int n = 0;
	char got[QUIC_KEY_B64_LEN], want[QUIC_KEY_B64_LEN];

	if (gnutls_certificate_type_get2(gs, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_RAWPK) {
		snprintf(t->reason, sizeof(t->reason),
			 "peer presented a certificate, not a raw public key");
		return -1;
	}
	peers = gnutls_certificate_get_peers(gs, &n);
	if (!peers || n == 0) {
		snprintf(t->reason, sizeof(t->reason), "peer presented no key");
		return -1;
	}
	if (!quic_tls_spki_key(t->peer_key, peers[0].data, peers[0].size)) {
		snprintf(t->reason, sizeof(t->reason),
			 "peer presented a key that is not Ed25519");
		return -1;
	}
	t->key_seen = true;
	quic_tls_key_str(got, t->peer_key);
	if (t->pinned_set) {
		if (memcmp(t->peer_key, t->pinned, QUIC_KEY_LEN) != 0) {
			quic_tls_key_str(want, t->pinned);
			snprintf(t->reason, sizeof(t->reason),
				 "peer presented key %s, expected %s", got, want);
			return -1;
		}
	} else if (!t->accept_key || !t->accept_key(t->accept_arg, t->peer_key)) {
		snprintf(t->reason, sizeof(t->reason), "peer key %s is not accepted", got);
		return -1;
	}
	t->key_ok = true;
	return 0;
}

int quic_tls_cred_new(struct quic_tls_cred **out, const uint8_t *seed,
		      const uint8_t *pub, const char **why)
{
	struct quic_tls_cred *c;
	uint8_t spki[QUIC_TLS_SPKI_LEN], pkcs8[QUIC_TLS_PKCS8_LEN], derived[QUIC_KEY_LEN];
	gnutls_datum_t d_spki = { spki, sizeof(spki) }, d_key = { pkcs8, sizeof(pkcs8) };
	int rv;

	*out = NULL;
	if (!seed != !pub) {
		*why = "a private key needs its public key";
		return -1;
	}
	if (seed) {
		ed25519_sha512_public_key(derived, seed);
		if (memcmp(derived, pub, QUIC_KEY_LEN) != 0) {
			*why = "public key does not belong to the private key";
			return -1;
		}
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		*why = "out of memory";
		return -1;
	}
	if (gnutls_certificate_allocate_credentials(&c->gc) < 0) {
		free(c);
		*why = "cannot allocate TLS credentials";
		return -1;
	}
	if (seed) {
		quic_tls_spki_der(spki, pub);
		quic_tls_pkcs8_der(pkcs8, seed);
		rv = gnutls_certificate_set_rawpk_key_mem(c->gc, &d_spki, &d_key,
							  GNUTLS_X509_FMT_DER, NULL,
							  0, NULL, 0, 0);
		explicit_bzero(pkcs8, sizeof(pkcs8));
		if (rv < 0) {
			gnutls_certificate_free_credentials(c->gc);
			free(c);
			*why = "GnuTLS refused the Ed25519 key";
			return -1;
		}
	}
	gnutls_certificate_set_verify_function(c->gc, quic_tls_verify);
	*out = c;
	return 0;
}

void quic_tls_cred_free(struct quic_tls_cred *c)
{
	if (!c)
		return;
	gnutls_certificate_free_credentials(c->gc);
	free(c);
}

int quic_tls_session_init(struct quic_tls_session *t, struct quic_tls_cred *cred,
			  bool server, const uint8_t *pinned,
			  quic_accept_key_fn accept_key, void *accept_arg,
			  ngtcp2_crypto_get_conn get_conn, void *user_data)
{
	static const gnutls_datum_t alpn = {
		(unsigned char *)QUIC_ALPN, sizeof(QUIC_ALPN) - 1
	};
	unsigned int flags = (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_ENABLE_RAWPK;
	const char *step;

	memset(t, 0, sizeof(*t));
	t->conn_ref.get_conn = get_conn;
	t->conn_ref.user_data = user_data;
	if (pinned) {
		t->pinned_set = true;
		memcpy(t->pinned, pinned, QUIC_KEY_LEN);
	}
	t->accept_key = accept_key;
	t->accept_arg = accept_arg;

	step = "gnutls_init";
	if (gnutls_init(&t->gs, flags) < 0) {
		t->gs = NULL;
		goto err;
	}
	step = "configuring GnuTLS for QUIC";
	if ((server ? ngtcp2_crypto_gnutls_configure_server_session(t->gs)
		    : ngtcp2_crypto_gnutls_configure_client_session(t->gs)) != 0)
		goto err;
	step = "the TLS priority string";
	if (gnutls_priority_set_direct(t->gs, quic_tls_priority, NULL) < 0)
		goto err;
	gnutls_session_set_ptr(t->gs, &t->conn_ref);
	step = "setting TLS credentials";
	if (gnutls_credentials_set(t->gs, GNUTLS_CRD_CERTIFICATE, cred->gc) < 0)
		goto err;
	if (server)
		gnutls_certificate_server_set_request(t->gs, GNUTLS_CERT_REQUIRE);
	step = "setting ALPN";
	if (gnutls_alpn_set_protocols(t->gs, &alpn, 1, GNUTLS_ALPN_MANDATORY) < 0)
		goto err;
	return 0;
err:
	snprintf(t->reason, sizeof(t->reason), "TLS setup failed: %s", step);
	quic_tls_session_deinit(t);
	return -1;
}

void quic_tls_session_deinit(struct quic_tls_session *t)
{
	if (t->gs)
		gnutls_deinit(t->gs);
	t->gs = NULL;
}
