// Generated once by an independent Python implementation (hmac, hashlib); do not edit.
const KAT_CONFIRM_AGENT: &str = "5147c07ea3ce8055e14d7761533d2eaaa0b4f6791cf781b2901d11e1ccf99414";
const KAT_CONFIRM_DESKTOP: &str = "3a5139549275f40beb6e1d366af7ee3aeba96f9ef6b0193553d7e55e20dc2e5f";
const KAT_SEAL_AGENT: &str = "2e96de06397a478354f2845c24962f908e9b70b319093ae03da755bd5643f016";
const KAT_SEAL_DESKTOP: &str = "35c3b190ebb94f2d4ab6695ed38d8ff7fbec97b5314b6ee2b8500702ed343fce";
const KAT_TRANSCRIPT: &str = "a6132320c0a707a1055c17bd08a27112a158cddd04b261f33dc986bfc0e242f9";
const KAT_MAC: &str = "5986f40cabb0d77cc281a90c27207df912664b5d88da8ea7b8f8a9ae5682695d";
