// What the page knows: the user, their rooms and each room's messages, who is present and
// typing, the connection's state. Views read it; the controller (chat.js) changes it.
//
// A room's messages are kept by seq, and what is loaded is one run without holes, lo..hi:
// history pages extend it downwards, pushes upwards, and a replay after a reconnection
// (join with since = hi) fills what was missed. A message already held is kept unless the
// new copy has a higher version (an edit or a deletion), so nothing shows twice.

export const store = {
  me: null,
  rooms: new Map(),
  users: new Map(),
  invites: [],
  activeId: null,
  connection: { state: "connecting", retryAt: null, attempt: 0 },
  notifications: [],
};

export function resetStore() {
  store.me = null;
  store.rooms = new Map();
  store.users = new Map();
  store.invites = [];
  store.activeId = null;
  store.connection = { state: "connecting", retryAt: null, attempt: 0 };
  store.notifications = [];
}

/** A room as the page keeps it, from the API's room. */
export function newRoom(data) {
  return {
    id: data.id,
    kind: data.kind,
    name: data.name,
    topic: data.topic || "",
    createdBy: data.created_by,
    unread: data.unread || 0,
    role: null,
    lastReadSeq: null,
    readSent: 0,
    messages: new Map(),
    lo: null,
    hi: null,
    historyLoaded: false,
    atStart: false,
    loadingOlder: false,
    presence: new Map(),
    typing: new Map(),
    members: null,
    other: null,
    pending: [],
    joined: false,
    dividerSeq: null,
  };
}

export function updateRoom(room, data) {
  room.kind = data.kind;
  room.name = data.name;
  room.topic = data.topic || "";
  if (typeof data.unread === "number") room.unread = data.unread;
  if (data.role !== undefined) room.role = data.role;
  if (data.last_read_seq !== undefined) room.lastReadSeq = data.last_read_seq;
}

export function rememberUser(user) {
  if (user && typeof user.id === "number") {
    store.users.set(user.id, { id: user.id, username: user.username, display_name: user.display_name });
  }
}

export const userById = (id) => store.users.get(id) || null;

/** A message of the socket's (sender: an id) or of the API's (sender: a user) as kept. */
export function normalizeMessage(data) {
  let senderId = data.sender;
  if (senderId && typeof senderId === "object") {
    rememberUser(senderId);
    senderId = senderId.id;
  }
  return {
    seq: data.seq,
    version: data.version,
    senderId: senderId ?? null,
    clientMsgId: data.client_msg_id,
    body: data.body,
    createdAt: new Date(data.created_at),
    editedAt: data.edited_at ? new Date(data.edited_at) : null,
    deletedAt: data.deleted_at ? new Date(data.deleted_at) : null,
  };
}

/**
 * Keep a message: "new", "updated" (a higher version), or "duplicate" (nothing changes).
 * Messages are assumed to extend lo..hi; see gapBefore for checking that first.
 */
export function putMessage(room, message) {
  const old = room.messages.get(message.seq);
  if (old && old.version >= message.version) return "duplicate";
  room.messages.set(message.seq, message);
  if (room.hi === null || message.seq > room.hi) room.hi = message.seq;
  if (room.lo === null || message.seq < room.lo) room.lo = message.seq;
  if (room.lo === 1) room.atStart = true;
  return old ? "updated" : "new";
}

/** Whether a pushed message would leave a hole after what is held (then: join with since). */
export const gapBefore = (room, seq) => room.hi !== null && seq > room.hi + 1;

/** The messages held, in order. */
export function orderedMessages(room) {
  return [...room.messages.values()].sort((a, b) => a.seq - b.seq);
}

/** A room's name as shown: "lobby", or the other person of a direct room. */
export function roomLabel(room) {
  if (room.kind === "direct") {
    return room.other ? room.other.display_name || room.other.username : "Direct message";
  }
  return room.name || `room ${room.id}`;
}

/** Whether a user has the room open (presence pushes), or is online (member list). */
export function isPresent(room, userId) {
  if (store.me && userId === store.me.id && store.connection.state === "online") return true;
  if ((room.presence.get(userId) || 0) > 0) return true;
  return false;
}

/** The people typing in a room now (not oneself), by name. */
export function typingNames(room, now = Date.now()) {
  const names = [];
  for (const [userId, until] of room.typing) {
    if (until <= now) room.typing.delete(userId);
    else if (userId !== store.me?.id) {
      const user = userById(userId);
      names.push(user ? user.display_name || user.username : "Someone");
    }
  }
  return names;
}

/** Whether the user may moderate (kick, ban, mute) a member of the room. */
export function canModerate(room, member) {
  if (!store.me || room.kind === "direct" || member.user.id === store.me.id) return false;
  if (member.role === "owner") return false;
  if (room.role === "owner") return true;
  return room.role === "admin" && member.role === "member";
}

/** Total unread messages, for the title. */
export const totalUnread = () => [...store.rooms.values()].reduce((sum, r) => sum + r.unread, 0);
