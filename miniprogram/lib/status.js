// A request as the parent reads it: status, urgency and history in words, times as "12月6日 14:05".
const i18n = require('./i18n');

function clock(iso) {
  if (!iso) return '';
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return '';
  const two = (n) => String(n).padStart(2, '0');
  // Shown in China time whatever the phone's zone: the school's deadlines are Beijing time.
  const china = new Date(at.getTime() + 8 * 3600 * 1000);
  const day = i18n.lang() === 'en'
    ? `${china.getUTCFullYear()}-${two(china.getUTCMonth() + 1)}-${two(china.getUTCDate())}`
    : `${china.getUTCMonth() + 1}月${china.getUTCDate()}日`;
  return `${day} ${two(china.getUTCHours())}:${two(china.getUTCMinutes())}`;
}

function statusText(request, w) {
  const template = w.statusWords[request.status] || request.status;
  return i18n.fill(template, {owner: request.owner_name || w.owner});
}

// What the pages show of a request (GET /v1/requests/{id}, the 201, or one row of the list).
function present(request, children = []) {
  const w = i18n.words();
  const child = children.find((c) => c.id === request.student_id);
  return {
    id: request.id,
    text: request.text,
    status: request.status,
    statusText: statusText(request, w),
    urgency: request.urgency,
    urgencyText: w.urgencyWords[request.urgency] || request.urgency,
    emergency: request.urgency === 'P0',
    open: request.status !== 'resolved',
    ownerName: request.owner_name || '',
    etaText: request.eta_text || '',
    childName: child ? child.name : '',
    createdAt: clock(request.created_at),
    schoolPhone: request.school_phone || '',
    // What a parent reads of an emergency (SHARED_NAMES.md); absent from a Relay that does not send them yet.
    told: (request.told || []).map((person) => `${person.name}（${person.role_text}）`).join('、'),
    acknowledged: request.acknowledged
      ? i18n.fill(w.acknowledgedBy, {who: `${request.acknowledged.name}（${request.acknowledged.role_text}）`,
        at: clock(request.acknowledged.at)})
      : '',
    onSite: request.on_site ? i18n.fill(w.onSiteBy, {who: request.on_site.name, at: clock(request.on_site.at)}) : '',
    outcome: request.outcome ? request.outcome.text : '',
    closingMessage: request.closing_message || '',
    replies: (request.replies || []).map((reply) => ({text: reply.text, at: clock(reply.at)})),
    timeline: (request.timeline || []).map((entry) => ({
      words: w.timelineWords[entry.kind] || entry.kind,
      text: entry.text || '',
      at: clock(entry.at),
    })),
  };
}

module.exports = {clock, statusText, present};
