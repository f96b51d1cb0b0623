// Command kcm-envelope-open is the reference reader as a program: it checks an
// openkcm-envelope v1 file under every reader rule of docs/formats.md and, with a private
// key file, opens it.
//
//	kcm-envelope-open [-key FILE] [-expect-fingerprint HEX] [-reveal] ENVELOPE
//
// Without -key it parses and verifies the signature only. It prints one JSON object with
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

	"openkcm.example/envelope"
)

func main() {
	keyFile := flag.String("key", "", "private key file (PEM RSA, age identity, OpenSSH Ed25519)")
	expect := flag.String("expect-fingerprint", "", "the MasterKey fingerprint (64 hex) to require")
	reveal := flag.Bool("reveal", false, "print the plaintext as hex (THROWAWAY keys only)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: kcm-envelope-open [-key FILE] [-expect-fingerprint HEX] [-reveal] ENVELOPE")
		os.Exit(2)
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
	}
	if *keyFile == "" {
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
		plain, err := envelope.Open(env, key, *expect)
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
