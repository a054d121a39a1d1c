"""The staff pages' answers, timers, alerts and the words for codes (channels, delivery reasons, timeline kinds).

Kept beside relay/pages/i18n.py (which merges them in) so that what a staff member reads after an
action, or instead of a code, is written down in one place, Chinese first.
"""

from __future__ import annotations

# key: (Chinese, English)
_WORDS: dict[str, tuple[str, str]] = {
    # What each action did: the page says it, never a bare "done".
    "done": ("已完成。", "Done."),
    "done_ack_mine": ("已确认，由您负责。", "Acknowledged: it is yours."),
    "done_ack_other": ("已确认接收；负责人仍是{owner}。", "Acknowledged; {owner} still owns it."),
    "done_claim": ("已认领，由您负责。", "Claimed: it is yours now."),
    "done_reply": ("已回复家长。", "Your reply was sent to the parent."),
    "done_note": ("已保存内部备注（家长看不到）。", "Internal note saved (the parent does not see it)."),
    "done_reassign": ("已转交给{owner}。", "Reassigned to {owner}."),
    "done_resolve": ("已办结。", "Resolved."),
    "done_merge": ("已把追问并入这条请求，原请求已办结。", "The follow-up was merged into this request."),
    "done_row_ack": ("已确认：{what}。{who}", "Acknowledged: {what}. {who}"),
    "acked_by_other": ("{who}已先确认了：{what}。", "{who} acknowledged it first: {what}."),
    "you_own_it": ("由您负责。", "It is yours."),
    "owner_stays": ("负责人仍是{owner}。", "{owner} still owns it."),
    # Timers in plain words ("1分36秒内需确认", "已超时24秒").
    "t_ack_in": ("{span}内需确认", "{span} to acknowledge"),
    "t_resolve_in": ("{span}内需办结", "{span} to resolve"),
    "t_late": ("已超时{span}", "overdue by {span}"),
    "u_d": ("天", "d"),
    "report": ("每周报告", "Weekly report"),
    # The queue's emergencies: the tab title, a sound and a browser notification.
    "waiting_title": ("紧急待确认", "emergencies waiting"),
    "row_ack": ("确认接收", "Acknowledge"),
    "alerts_on": ("开启紧急提醒（声音和通知）", "Turn on emergency alerts (sound and notification)"),
    "alerts_ready": ("紧急提醒已开启：新的紧急请求会响铃并弹出通知。",
                     "Emergency alerts are on: a new emergency rings and shows a notification."),
    "alerts_sound_only": ("浏览器不允许通知：新的紧急请求只会响铃。",
                          "The browser blocks notifications: a new emergency only rings."),
    "new_p0": ("新的紧急请求", "New emergency"),
    # Workload: what each column counts.
    "workload_intro": ("每位教务老师名下还没有办结的请求。超时多的排在最前，请优先关注。",
                       "The requests each academic-affairs teacher owns and has not resolved yet. "
                       "Whoever has the most overdue comes first."),
    "open_help": ("由该老师负责、尚未办结的请求（含已回复待办结的）。",
                  "Requests this teacher owns that are not resolved yet (answered ones included)."),
    "overdue_help": ("已过截止时间的请求：还没确认的过了确认时限，已确认的过了办结时限。",
                     "Past their due time: not acknowledged within the acknowledgement time, or not resolved "
                     "within the resolution time."),
    "p0_help": ("其中紧急（P0）请求的数量：健康或安全有风险，需立即处理。",
                "How many of them are emergencies (P0): health or safety at risk, to be handled at once."),
    "away_now": ("请假中", "On leave"),
    # Who did it, when it was not a staff member.
    "by_guardian": ("家长", "The parent"),
    "by_system": ("系统", "Relay"),
    # Channels and delivery outcomes in words.
    "ch_wecom": ("企业微信", "WeCom"),
    "ch_sms": ("短信", "SMS"),
    "ch_dingtalk": ("钉钉", "DingTalk"),
    "ch_webhook": ("接口推送", "Webhook"),
    "ch_miniprogram": ("小程序", "Mini-program"),
    "ch_outbox": ("开发发件箱", "Dev outbox"),
    "why_ok": ("已送达", "delivered"),
    "why_auth": ("渠道凭证被拒", "credentials refused"),
    "why_rate_limited": ("发送过于频繁", "rate limited"),
    "why_client": ("消息被渠道拒收", "refused by the channel"),
    "why_server": ("渠道服务器出错", "the channel's server failed"),
    "why_timeout": ("渠道响应超时", "timed out"),
    "why_recipient": ("此人无法通过该渠道联系", "not reachable on this channel"),
    "why_not_configured": ("该渠道尚未配置", "channel not set up"),
    "next_channel": ("改用{channel}", "trying {channel}"),
    # Why a person was told (the dev outbox and the report say it in words).
    "r_owner": ("负责人", "owner"),
    "r_nurse": ("校医", "nurse"),
    "r_safety_officer": ("安全员", "safety officer"),
    "r_duty_leader": ("值班领导", "duty leader"),
    "r_principal": ("校长", "principal"),
    "r_homeroom": ("班主任", "homeroom teacher"),
    "r_academic_affairs": ("教务老师", "academic affairs"),
    "r_admin": ("管理员", "administrator"),
    "r_backup": ("代班人", "backup"),
    "r_responder": ("校医/安全员", "responder"),
    "r_escalation": ("逐级上报", "escalation"),
    "r_acknowledger": ("确认人", "who acknowledged"),
    "r_guardian": ("家长", "guardian"),
    "r_digest": ("早间汇总", "morning digest"),
    "r_sign_in": ("登录", "sign-in"),
    "r_staff": ("教职工", "staff"),
    # Notifications in words.
    "e_request.urgent": ("紧急通知", "Emergency alert"),
    "e_request.created": ("新请求通知", "New request"),
    "e_request.escalated": ("升级通知", "Escalation"),
    "e_request.fyi": ("知悉通知", "For information"),
    "e_request.ack_confirmed": ("确认回执", "Acknowledgement receipt"),
    "e_request.reminder": ("进展提醒", "Update reminder"),
    "e_request.parent_update": ("家长补充", "Parent wrote again"),
    "e_request.reassigned": ("转交通知", "Reassigned"),
    "e_request.digest": ("早间汇总", "Morning digest"),
    "e_request.outbreak": ("聚集性提示", "Outbreak alert"),
    "e_request.received": ("告知家长：已受理", "To the parent: received"),
    "e_request.assigned": ("告知家长：已分配", "To the parent: assigned"),
    "e_request.answered": ("告知家长：已回复", "To the parent: answered"),
    "e_staff.sign_in": ("登录链接", "Sign-in link"),
    # The dev outbox.
    "outbox_title": ("开发发件箱", "Dev outbox"),
    "outbox_intro": ("relay dev 下，没有配置渠道凭证的通知都放在这里（最新的在前；刷新查看新通知）。",
                     "Notifications that relay dev would send to channels without credentials. "
                     "Newest first; reload to refresh."),
    "outbox_off": ("开发发件箱只在 relay dev 下开启。", "The dev outbox is only on under relay dev."),
    "outbox_empty": ("暂无通知。", "Nothing sent yet."),
    "outbox_link": ("链接", "Link"),
}

# Timeline entries the first list of words did not cover.
KINDS: dict[str, tuple[str, str]] = {
    "fallback_unacknowledged": ("未确认，改发下一个联系方式", "Not acknowledged: next contact tried"),
    "dead_letter_dropped": ("失败的通知已放弃", "Failed notification dropped"),
    "delivery_redriven": ("失败的通知已重发", "Failed notification sent again"),
    "digest_sent": ("已在早间汇总中发送", "Sent in the morning digest"),
    "notified": ("已通知", "Notified"),
    "outbreak_alert": ("聚集性提示", "Outbreak alert"),
    "marked_urgent": ("家长标记为紧急", "The parent marked it urgent"),
    "retriaged": ("已重新分级", "Re-triaged"),
    "urgent": ("紧急", "Urgent"),
}

ZH = {key: pair[0] for key, pair in _WORDS.items()}
EN = {key: pair[1] for key, pair in _WORDS.items()}
