// The reference reader of openkcm-envelope v1 (docs/formats.md sections 0 and 1).
// Builds offline against Debian's golang-golang-x-crypto-dev and golang-filippo-age-dev
// (GOPATH mode, see README.md); a Go service copies the envelope package into its module.
module openkcm.example/envelope

go 1.19

require (
	filippo.io/age v1.1.1
	golang.org/x/crypto v0.4.0
)
