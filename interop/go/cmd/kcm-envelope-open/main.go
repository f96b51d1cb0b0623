// Command kcm-envelope-open is the reference reader as a program: it checks an
// openkcm-envelope file (version 1, or a version-2 transitional envelope) under every reader rule of docs/formats.md and, with a private
// key file, opens it.
//
//	kcm-envelope-open [-key FILE] [-expect-fingerprint HEX] [-now TIME] [-reveal] ENVELOPE
//
// Without -key it parses and verifies the signature only. A transitional envelope is
// refused at or after its expiry, judged by the clock or at -now (2026-01-31T12:00:00Z). It prints one JSON object with
// the public facts (and "plaintext_hex" with -reveal: for tests with THROWAWAY keys) and
// exits 0; a refused envelope prints "REFUSED: reason" on stderr and exits 1; usage errors
// exit 2.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"openkcm.example/envelope"
)

func main() {
	keyFile := flag.String("key", "", "private key file (PEM RSA, age identity, OpenSSH Ed25519)")
	expect := flag.String("expect-fingerprint", "", "the MasterKey fingerprint (64 hex) to require")
	reveal := flag.Bool("reveal", false, "print the plaintext as hex (THROWAWAY keys only)")
	nowText := flag.String("now", "", "judge a transitional envelope's expiry at this time (2026-01-31T12:00:00Z)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: kcm-envelope-open [-key FILE] [-expect-fingerprint HEX] [-now TIME] [-reveal] ENVELOPE")
		os.Exit(2)
	}
	now := time.Now()
	if *nowText != "" {
		t, err := time.Parse("2006-01-02T15:04:05Z", *nowText)
		if err != nil {
			fmt.Fprintln(os.Stderr, "-now: expected a time like 2026-01-31T12:00:00Z")
			os.Exit(2)
		}
		now = t
	}
	refuse := func(err error) {
		fmt.Fprintln(os.Stderr, "REFUSED:", err)
		os.Exit(1)
	}
	data, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	env, err := envelope.Parse(data)
	if err != nil {
		refuse(err)
	}
	out := map[string]interface{}{
		"kind":                  env.Header.Kind,
		"cluster_id":            env.Header.ClusterID,
		"region_id":             env.Header.RegionID,
		"masterkey_fingerprint": hex.EncodeToString(env.Header.MasterKeyFingerprint),
		"kcv":                   env.Header.KCV,
		"alg":                   env.Alg,
		"recipient":             env.Header.Recipient.Name,
		"shard":                 env.Header.Shard,
		"version":               1,
	}
	if t := env.Header.Transition; t != nil {
		out["version"] = 2
		out["transition"] = map[string]interface{}{
			"expires_utc":           t.ExpiresUTC,
			"successor_fingerprint": hex.EncodeToString(t.SuccessorFingerprint),
			"expired":               !now.Before(t.Expires),
		}
	}
	if *keyFile == "" {
		if err := envelope.CheckExpiry(env, now); err != nil {
			refuse(err)
		}
		if err := envelope.VerifySignature(env); err != nil {
			refuse(err)
		}
		out["signature"] = "valid"
	} else {
		keyData, err := os.ReadFile(*keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		key, err := envelope.LoadKey(env.Alg, keyData)
		if err != nil {
			refuse(fmt.Errorf("key file: %v", err))
		}
		plain, err := envelope.OpenAt(env, key, *expect, now)
		if err != nil {
			refuse(err)
		}
		out["signature"] = "valid"
		out["opened"] = true
		sum := sha256.Sum256(plain)
		out["plaintext_sha256"] = hex.EncodeToString(sum[:])
		if *reveal {
			out["plaintext_hex"] = hex.EncodeToString(plain)
		}
		for i := range plain {
			plain[i] = 0
		}
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		os.Exit(2)
	}
}
