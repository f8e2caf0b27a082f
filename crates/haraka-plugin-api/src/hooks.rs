//! Hooks as a plugin author registers them, as Haraka's
//! `this.register_hook('rcpt', 'check')` does: one line names the hook and the
//! method handling it (`hooks.rcpt(Self::check)`), so the list of hooks and the
//! dispatch cannot drift apart. A handler takes `&self`, the connection (the queued
//! mail for outbound hooks) and the hook's own arguments, and returns an
//! [`Outcome`] when it answers at once or a future of one (an `async fn`) when it
//! has to wait. A closure works too when its parameters are typed:
//! `hooks.helo(|_: &Self, conn: &mut Connection, host: &str| Outcome::cont())`.

use std::future::Future;
use std::sync::Arc;

use haraka_smtp::{Address, Connection, Hook, HookArgs, Msg, Outcome};

use crate::{BoxFuture, OutboundArgs, OutboundMail, Plugin, Registration, ready};

/// A plugin as its author writes it: Haraka's `register()` names the method that
/// handles each hook. [`plugin`] turns it into the [`Plugin`] the server runs.
pub trait Register: Send + Sync + Sized + 'static {
    /// Registers the plugin's hooks (called once, after the plugin was built, so
    /// which hooks to register may depend on its configuration).
    fn register(&self, hooks: &mut Hooks<Self>);

    /// Called once when the server shuts down.
    fn shutdown(&self) {}
}

/// Wraps `plugin`, named `name` (as written in `config/plugins`), into what the
/// server's hook runner drives.
pub fn plugin<P: Register>(name: &str, plugin: P) -> Arc<dyn Plugin> {
    let mut hooks = Hooks(Vec::new());
    plugin.register(&mut hooks);
    Arc::new(Registered {
        name: name.to_owned(),
        plugin,
        hooks,
    })
}

/// Marks a handler that answers at once (returns an [`Outcome`]).
pub enum Now {}
/// Marks a handler that answers later (returns a future of an [`Outcome`]).
pub enum Later {}

/// What a handler returns: an [`Outcome`] ([`Now`]) or a `Send` future of one
/// ([`Later`]).
pub trait Answer<'a, M> {
    /// The answer as the boxed future the runner awaits.
    fn into_future(self) -> BoxFuture<'a, Outcome>;
}

impl<'a> Answer<'a, Now> for Outcome {
    fn into_future(self) -> BoxFuture<'a, Outcome> {
        ready(self)
    }
}

impl<'a, F: Future<Output = Outcome> + Send + 'a> Answer<'a, Later> for F {
    fn into_future(self) -> BoxFuture<'a, Outcome> {
        Box::pin(self)
    }
}

macro_rules! handler_shapes {
    ($($(#[$doc:meta])* $name:ident($target:ty $(, $arg:ty)*);)*) => {$(
        $(#[$doc])*
        pub trait $name<'a, P: 'a, M>:
            Fn(&'a P, &'a mut $target $(, $arg)*) -> Self::Out + Send + Sync + 'static
        {
            /// What the handler returns.
            type Out: Answer<'a, M>;
        }

        impl<'a, P: 'a, M, F, R> $name<'a, P, M> for F
        where
            F: Fn(&'a P, &'a mut $target $(, $arg)*) -> R + Send + Sync + 'static,
            R: Answer<'a, M>,
        {
            type Out = R;
        }
    )*};
}

handler_shapes! {
    /// `fn(&self, conn: &mut Connection)`.
    OnConn(Connection);
    /// `fn(&self, conn: &mut Connection, host: &str)`: the HELO/EHLO name.
    OnHello(Connection, &'a str);
    /// `fn(&self, conn: &mut Connection, from: Option<&Address>)`: `None` is `<>`.
    OnMail(Connection, Option<&'a Address>);
    /// `fn(&self, conn: &mut Connection, to: &Address)`.
    OnRcpt(Connection, &'a Address);
    /// `fn(&self, conn: &mut Connection, verb: &str, rest: &str)`.
    OnCommand(Connection, &'a str, &'a str);
    /// `fn(&self, conn: &mut Connection, msg: &Msg)`.
    OnMsg(Connection, &'a Msg);
    /// `fn(&self, conn: &mut Connection, args: &HookArgs)`: any SMTP hook.
    OnArgs(Connection, &'a HookArgs);
    /// `fn(&self, mail: &mut OutboundMail)`.
    OnOutbound(OutboundMail);
    /// `fn(&self, mail: &mut OutboundMail, domain: &str)`.
    OnGetMx(OutboundMail, &'a str);
    /// `fn(&self, mail: &mut OutboundMail, args: &OutboundArgs)`: `delivered` gets
    /// `OutboundArgs::Delivered`, `deferred` `Deferred`, `bounce` `Bounce`.
    OnOutboundArgs(OutboundMail, &'a OutboundArgs);
}

type ConnFn<P> = Box<
    dyn for<'a> Fn(&'a P, &'a mut Connection, &'a HookArgs) -> BoxFuture<'a, Outcome> + Send + Sync,
>;
type MailFn<P> = Box<
    dyn for<'a> Fn(&'a P, &'a mut OutboundMail, &'a OutboundArgs) -> BoxFuture<'a, Outcome>
        + Send
        + Sync,
>;

enum Handler<P> {
    Conn(ConnFn<P>),
    Mail(MailFn<P>),
}

/// The hooks a plugin registered, each with its handler (Haraka's
/// `register_hook`). Registering a hook again replaces its handler.
pub struct Hooks<P>(Vec<(Registration, Handler<P>)>);

/// Sets the priority of the hook just registered.
pub struct Priority<'h>(&'h mut Registration);

impl Priority<'_> {
    /// Haraka's priority: −100 … 100, lower runs first, 0 by default; plugins of
    /// equal priority run in `config/plugins` order.
    pub fn priority(self, priority: i32) {
        self.0.priority = priority.clamp(-100, 100);
    }
}

impl<P> Hooks<P> {
    fn add(&mut self, hook: Hook, handler: Handler<P>) -> Priority<'_> {
        self.0.retain(|(r, _)| r.hook != hook);
        self.0.push((Registration::new(hook), handler));
        let last = self.0.len() - 1;
        Priority(&mut self.0[last].0)
    }

    fn find(&self, hook: Hook) -> Option<&Handler<P>> {
        self.0.iter().find(|(r, _)| r.hook == hook).map(|(_, h)| h)
    }
}

macro_rules! hook_methods {
    ($($(#[$doc:meta])* $method:ident: $hook:ident, $kind:ident($shape:ident), $pat:pat => ($($arg:expr),*);)*) => {
        impl<P: Send + Sync + 'static> Hooks<P> {$(
            #[doc = concat!("Registers the handler of Haraka's `", stringify!($method), "` hook.")]
            $(#[$doc])*
            pub fn $method<M>(&mut self, f: impl for<'a> $shape<'a, P, M>) -> Priority<'_> {
                let handler = Handler::$kind(Box::new(move |p, target, args| match args {
                    $pat => f(p, target, $($arg),*).into_future(),
                    #[allow(unreachable_patterns, reason = "a catch-all for shapes that match any args")]
                    _ => ready(Outcome::cont()),
                }));
                self.add(Hook::$hook, handler)
            }
        )*

            /// Any SMTP-session hook, by value, with its raw [`HookArgs`] (for
            /// arguments the typed methods leave out, such as RCPT parameters).
            pub fn on<M>(&mut self, hook: Hook, f: impl for<'a> OnArgs<'a, P, M>) -> Priority<'_> {
                let handler = Handler::Conn(Box::new(move |p, conn, args| f(p, conn, args).into_future()));
                self.add(hook, handler)
            }
        }
    };
}

hook_methods! {
    connect_init: ConnectInit, Conn(OnConn), _ => ();
    lookup_rdns: LookupRdns, Conn(OnConn), _ => ();
    connect: Connect, Conn(OnConn), _ => ();
    capabilities: Capabilities, Conn(OnConn), _ => ();
    unrecognized_command: UnrecognizedCommand, Conn(OnCommand),
        HookArgs::Unrecognized { verb, rest } => (verb, rest);
    helo: Helo, Conn(OnHello), HookArgs::Hello(host) => (host);
    ehlo: Ehlo, Conn(OnHello), HookArgs::Hello(host) => (host);
    /// The sender's parameters are in `conn.transaction.mail_params`.
    mail: Mail, Conn(OnMail), HookArgs::Mail { from, .. } => (from.as_ref());
    rcpt: Rcpt, Conn(OnRcpt), HookArgs::Rcpt { to, .. } => (to);
    rcpt_ok: RcptOk, Conn(OnRcpt), HookArgs::Rcpt { to, .. } => (to);
    data: Data, Conn(OnConn), _ => ();
    /// The message is in `conn.transaction.message`.
    data_post: DataPost, Conn(OnConn), _ => ();
    max_data_exceeded: MaxDataExceeded, Conn(OnConn), _ => ();
    queue: Queue, Conn(OnConn), _ => ();
    queue_outbound: QueueOutbound, Conn(OnConn), _ => ();
    queue_ok: QueueOk, Conn(OnMsg), HookArgs::QueueOk(msg) => (msg);
    reset_transaction: ResetTransaction, Conn(OnConn), _ => ();
    /// `HookArgs::Deny` says what was rejected; OK cancels the rejection.
    deny: Deny, Conn(OnArgs), args => (args);
    rset: Rset, Conn(OnConn), _ => ();
    quit: Quit, Conn(OnConn), _ => ();
    vrfy: Vrfy, Conn(OnConn), _ => ();
    noop: Noop, Conn(OnConn), _ => ();
    disconnect: Disconnect, Conn(OnConn), _ => ();
    pre_send_trans_email: PreSendTransEmail, Mail(OnOutbound), _ => ();
    send_email: SendEmail, Mail(OnOutbound), _ => ();
    /// Set `mail.mx` and answer OK to choose where the mail goes.
    get_mx: GetMx, Mail(OnGetMx), OutboundArgs::GetMx { domain } => (domain);
    delivered: Delivered, Mail(OnOutboundArgs), args => (args);
    deferred: Deferred, Mail(OnOutboundArgs), args => (args);
    bounce: Bounce, Mail(OnOutboundArgs), args => (args);
}

/// A [`Register`] plugin with its name and hooks, as the runner sees it.
struct Registered<P> {
    name: String,
    plugin: P,
    hooks: Hooks<P>,
}

impl<P: Register> Plugin for Registered<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn hooks(&self) -> Vec<Registration> {
        self.hooks.0.iter().map(|(r, _)| *r).collect()
    }

    fn hook<'a>(
        &'a self,
        hook: Hook,
        conn: &'a mut Connection,
        args: &'a HookArgs,
    ) -> BoxFuture<'a, Outcome> {
        match self.hooks.find(hook) {
            Some(Handler::Conn(f)) => f(&self.plugin, conn, args),
            _ => ready(Outcome::cont()),
        }
    }

    fn outbound_hook<'a>(
        &'a self,
        hook: Hook,
        mail: &'a mut OutboundMail,
        args: &'a OutboundArgs,
    ) -> BoxFuture<'a, Outcome> {
        match self.hooks.find(hook) {
            Some(Handler::Mail(f)) => f(&self.plugin, mail, args),
            _ => ready(Outcome::cont()),
        }
    }

    fn shutdown(&self) {
        self.plugin.shutdown();
    }
}
