// Pairing-code checks as the person types, mirroring clawtray_proto::code (the Rust side is the
// authority; this only gives early, friendly feedback).

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export type CodeCheck = { ok: true; normalized: string } | { ok: false; hint: string; complete: boolean };

export function checkCode(input: string): CodeCheck {
  const raw = input.replace(/[\s-]/g, "").toUpperCase().replace(/O/g, "0").replace(/[IL]/g, "1");
  if (raw.length === 0) return { ok: false, hint: "The agent shows a code like 73514062-K4Q7-2MXD.", complete: false };
  for (const c of raw) {
    if (!ALPHABET.includes(c)) return { ok: false, hint: `"${c}" cannot appear in a code.`, complete: true };
  }
  const groups = input.trim().split("-");
  if (input.includes("-") && /^\d+$/.test(groups[0]?.trim() ?? "")) {
    const np = groups[0].trim();
    const secret = raw.slice(np.length);
    if (secret.length < 8) return { ok: false, hint: `${8 - secret.length} more character${secret.length === 7 ? "" : "s"} after the number.`, complete: false };
    if (secret.length > 8) return { ok: false, hint: "Too long: after the number come exactly 8 letters or digits.", complete: true };
    return { ok: true, normalized: `${np}-${secret.slice(0, 4)}-${secret.slice(4)}` };
  }
  if (raw.length <= 8) return { ok: false, hint: "Start with the number at the front, like 73514062.", complete: false };
  const np = raw.slice(0, raw.length - 8);
  if (!/^\d{1,8}$/.test(np)) return { ok: false, hint: "The code starts with a number (like 73514062).", complete: true };
  const s = raw.slice(-8);
  return { ok: true, normalized: `${np}-${s.slice(0, 4)}-${s.slice(4)}` };
}
