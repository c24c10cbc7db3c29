//! The global hotkey on X11, without a polling thread. The global-shortcut plugin's X11 backend
//! wakes every 50 ms to poll its connection (1,200 wake-ups a minute while nothing happens, the
//! largest cost of the tray app at rest); this grabs the key on the root window of a connection
//! of its own and blocks on that connection until the key is pressed.

use global_hotkey::hotkey::{Code, HotKey as Shortcut, Modifiers};
use x11rb::connection::Connection;
use x11rb::protocol::xkb::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{ConnectionExt as _, GrabMode, ModMask};
use x11rb::protocol::Event;

/// The X keysym of a key, for the keys a hotkey can reasonably use.
fn keysym(code: Code) -> Option<u32> {
    use Code::*;
    let letters = [
        KeyA, KeyB, KeyC, KeyD, KeyE, KeyF, KeyG, KeyH, KeyI, KeyJ, KeyK, KeyL, KeyM, KeyN, KeyO,
        KeyP, KeyQ, KeyR, KeyS, KeyT, KeyU, KeyV, KeyW, KeyX, KeyY, KeyZ,
    ];
    let digits = [
        Digit0, Digit1, Digit2, Digit3, Digit4, Digit5, Digit6, Digit7, Digit8, Digit9,
    ];
    let functions = [F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12];
    let index = |keys: &[Code]| keys.iter().position(|k| *k == code).map(|i| i as u32);
    if let Some(i) = index(&letters) {
        return Some(0x61 + i);
    }
    if let Some(i) = index(&digits) {
        return Some(0x30 + i);
    }
    if let Some(i) = index(&functions) {
        return Some(0xffbe + i);
    }
    Some(match code {
        Space => 0x20,
        Enter => 0xff0d,
        Escape => 0xff1b,
        Tab => 0xff09,
        Backquote => 0x60,
        Minus => 0x2d,
        Equal => 0x3d,
        Comma => 0x2c,
        Period => 0x2e,
        Slash => 0x2f,
        Semicolon => 0x3b,
        Quote => 0x27,
        BracketLeft => 0x5b,
        BracketRight => 0x5d,
        Backslash => 0x5c,
        Home => 0xff50,
        End => 0xff57,
        PageUp => 0xff55,
        PageDown => 0xff56,
        Insert => 0xff63,
        Delete => 0xffff,
        _ => return None,
    })
}

fn mod_mask(m: Modifiers) -> ModMask {
    let mut mask = ModMask::from(0u16);
    if m.contains(Modifiers::CONTROL) {
        mask |= ModMask::CONTROL;
    }
    if m.contains(Modifiers::SHIFT) {
        mask |= ModMask::SHIFT;
    }
    if m.contains(Modifiers::ALT) {
        mask |= ModMask::M1;
    }
    if m.contains(Modifiers::SUPER) || m.contains(Modifiers::META) {
        mask |= ModMask::M4;
    }
    mask
}

/// Grab `shortcut` on the display in `$DISPLAY` and call `pressed` (on a thread of its own, which
/// sleeps in the X connection between presses) each time it is pressed. Fails with a sentence
/// when the display cannot be reached, the key has no keycode, or another program holds it.
pub fn grab(shortcut: Shortcut, pressed: impl Fn() + Send + 'static) -> Result<(), String> {
    let sym = keysym(shortcut.key)
        .ok_or_else(|| format!("the key {:?} cannot be used for the hotkey", shortcut.key))?;
    let (conn, screen) =
        x11rb::connect(None).map_err(|e| format!("cannot reach the X display: {e}"))?;
    let setup = conn.setup();
    let root = setup
        .roots
        .get(screen)
        .ok_or("the X display has no such screen")?
        .root;
    // a held key then repeats as presses only (no release in between), so one press = one toggle
    let detectable = xkb::ConnectionExt::xkb_use_extension(&conn, 1, 0)
        .ok()
        .and_then(|c| c.reply().ok())
        .and_then(|_| {
            conn.xkb_per_client_flags(
                xkb::ID::USE_CORE_KBD.into(),
                xkb::PerClientFlag::DETECTABLE_AUTO_REPEAT,
                xkb::PerClientFlag::DETECTABLE_AUTO_REPEAT,
                Default::default(),
                Default::default(),
                Default::default(),
            )
            .ok()
        })
        .and_then(|c| c.reply().ok())
        .is_some();
    if !detectable {
        tracing::debug!("no detectable auto-repeat: holding the hotkey may toggle repeatedly");
    }
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let map = conn
        .get_keyboard_mapping(min, max - min + 1)
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| e.to_string())?;
    let per = usize::from(map.keysyms_per_keycode.max(1));
    let keycode = map
        .keysyms
        .chunks(per)
        .position(|syms| syms.contains(&sym))
        .and_then(|i| u8::try_from(i).ok())
        .map(|i| min + i)
        .ok_or("the keyboard has no key for the hotkey")?;
    let mods = mod_mask(shortcut.mods);
    // the same combination with Caps Lock and/or Num Lock on
    for extra in [
        0u16,
        ModMask::LOCK.into(),
        ModMask::M2.into(),
        u16::from(ModMask::LOCK) | u16::from(ModMask::M2),
    ] {
        conn.grab_key(
            false,
            root,
            mods | ModMask::from(extra),
            keycode,
            GrabMode::ASYNC,
            GrabMode::ASYNC,
        )
        .map_err(|e| e.to_string())?
        .check()
        .map_err(|_| "another program holds this key combination".to_owned())?;
    }
    conn.flush().map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("hotkey".into())
        .spawn(move || {
            let mut down = false;
            loop {
                match conn.wait_for_event() {
                    Ok(Event::KeyPress(e)) if e.detail == keycode => {
                        if !down {
                            pressed();
                        }
                        down = true;
                    }
                    Ok(Event::KeyRelease(e)) if e.detail == keycode => down = false,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("the hotkey stopped: the X connection failed ({e})");
                        return;
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the hotkey thread: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_keys_have_keysyms() {
        assert_eq!(keysym(Code::Space), Some(0x20));
        assert_eq!(keysym(Code::KeyK), Some(0x6b));
        assert_eq!(keysym(Code::Digit7), Some(0x37));
        assert_eq!(keysym(Code::F12), Some(0xffc9));
        assert_eq!(keysym(Code::AudioVolumeUp), None);
    }

    #[test]
    fn modifiers_map_to_x_masks() {
        let m = mod_mask(Modifiers::CONTROL | Modifiers::SHIFT);
        assert_eq!(
            u16::from(m),
            u16::from(ModMask::CONTROL) | u16::from(ModMask::SHIFT)
        );
        assert_eq!(u16::from(mod_mask(Modifiers::ALT)), u16::from(ModMask::M1));
    }
}
