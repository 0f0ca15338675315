"""What each kind of notification says: an accented Vietnamese push, and an unaccented SMS that fits one part.

Rules for the texts (spec §2.3, §2.4, §1.3):
* SMS carry no health details: a first name, what kind of appointment, a date and where to look. The push may say
  more because it lands in the app, on a device the user unlocked.
* No promotion of any kind, or the message becomes advertising under Decree 91/2020 (label, caps, opt-in).
* Vaccination reminders ask the family to bring the child for screening ("khám sàng lọc trước tiêm", QĐ
  1575/QĐ-BYT); they never say the child is eligible.
* SMS are rendered without accents (GSM-7, 160 characters a part); ``render_sms`` strips any that slip in.

A missing parameter is a programming error in the module that enqueued the message: the dispatcher dead-letters
that row with the KeyError's text rather than sending a broken message.
"""

from __future__ import annotations

from dataclasses import dataclass

from notifications.text import strip_diacritics


@dataclass(frozen=True, slots=True)
class Template:
    title: str
    body: str
    sms: str | None  # None: this kind is never sent by SMS (and has no SMS fallback)
    link: str  # deep link the app opens, formatted with the same parameters
    priority: str = "normal"  # FCM priority: "high" only for what the user must see now
    ttl_s: int = 24 * 3600  # how long FCM keeps trying to reach an offline device
    # a reminder (scheduled ahead, not the answer to something that just happened): waits out the quiet hours and
    # counts toward the daily cap
    reminder: bool = False


_VACCINE_SMS_TAIL = " Mo ung dung Lienthong de xem lich tiem."

TEMPLATES: dict[str, Template] = {
    # consultations
    "appointment_booked": Template(
        title="Đã đặt lịch khám",
        body="Lịch khám trực tuyến với {doctor_name} lúc {starts_at}.",
        sms="Lienthong: ban da dat lich kham truc tuyen luc {starts_at}.",
        link="lienthong://consultations/{consultation_id}"),
    "appointment_reminder_24h": Template(
        title="Nhắc lịch khám ngày mai",
        body="Bạn có lịch khám trực tuyến với {doctor_name} lúc {starts_at}.",
        sms="Lienthong: nhac lich kham truc tuyen luc {starts_at}.",
        link="lienthong://consultations/{consultation_id}", reminder=True),
    "appointment_starting_soon": Template(
        title="Sắp đến giờ khám",
        body="Buổi khám với {doctor_name} bắt đầu lúc {starts_at}. Hãy vào phòng chờ.",
        sms="Lienthong: buoi kham bat dau luc {starts_at}. Mo ung dung de vao phong cho.",
        link="lienthong://consultations/{consultation_id}/call", priority="high", ttl_s=1800),
    "call_started": Template(
        title="Bác sĩ đã vào cuộc gọi",
        body="{doctor_name} đang chờ bạn trong cuộc gọi video.",
        sms=None,
        link="lienthong://consultations/{consultation_id}/call", priority="high", ttl_s=600),
    "appointment_cancelled_by_doctor": Template(
        title="Lịch khám đã bị hủy",
        body="{doctor_name} đã hủy lịch khám lúc {starts_at}. Bạn có thể đặt lịch khác.",
        sms="Lienthong: lich kham luc {starts_at} da bi huy boi bac si. Mo ung dung de dat lich khac.",
        link="lienthong://consultations/{consultation_id}"),
    # prescriptions (the code is not put in SMS: with it, any pharmacy can read the prescription)
    "prescription_issued": Template(
        title="Bạn có đơn thuốc mới",
        body="{doctor_name} đã kê đơn {code}. Đơn có hiệu lực đến {valid_until}.",
        sms="Lienthong: ban co don thuoc moi, hieu luc den {valid_until}. Mo ung dung de xem ma don.",
        link="lienthong://prescriptions/{prescription_id}"),
    "prescription_dispensed": Template(
        title="Đơn thuốc đã được bán đủ",
        body="Nhà thuốc {pharmacy_name} đã bán đủ đơn {code}.",
        sms=None,
        link="lienthong://prescriptions/{prescription_id}"),
    "prescription_partially_dispensed": Template(
        title="Đơn thuốc đã được bán một phần",
        body="Nhà thuốc {pharmacy_name} đã bán một phần đơn {code}. Phần còn lại mua trước {valid_until}.",
        sms=None,
        link="lienthong://prescriptions/{prescription_id}"),
    "prescription_cancelled": Template(
        title="Đơn thuốc đã bị hủy",
        body="Đơn {code} đã bị bác sĩ hủy. Không dùng đơn này để mua thuốc.",
        sms="Lienthong: mot don thuoc cua ban da bi bac si huy. Mo ung dung de xem.",
        link="lienthong://prescriptions/{prescription_id}", priority="high"),
    # payments
    "payment_confirmed": Template(
        title="Thanh toán thành công",
        body="Đã nhận {amount} cho {purpose}.",
        sms="Lienthong: da nhan thanh toan {amount_plain}.",
        link="lienthong://payments/{payment_id}"),
    # vaccination (spec §2.2: D-7, D-1, D0, D+7, D+30)
    "vaccination_due_soon": Template(
        title="Sắp đến lịch tiêm của bé {child_name}",
        body="Mũi {vaccine_name} của bé {child_name} dự kiến ngày {due_date}. Đưa bé đi khám sàng lọc trước tiêm.",
        sms="Lienthong: be {child_name} co lich tiem ngay {due_date}." + _VACCINE_SMS_TAIL,
        link="lienthong://children/{child_id}/vaccinations", reminder=True),
    "vaccination_due_tomorrow": Template(
        title="Ngày mai bé {child_name} có lịch tiêm",
        body="Mũi {vaccine_name} của bé {child_name} dự kiến ngày {due_date}. Đưa bé đi khám sàng lọc trước tiêm.",
        sms="Lienthong: ngay mai {due_date} be {child_name} co lich tiem." + _VACCINE_SMS_TAIL,
        link="lienthong://children/{child_id}/vaccinations", reminder=True),
    "vaccination_due_today": Template(
        title="Hôm nay bé {child_name} có lịch tiêm",
        body="Mũi {vaccine_name} của bé {child_name} dự kiến hôm nay. Đưa bé đi khám sàng lọc trước tiêm.",
        sms="Lienthong: hom nay {due_date} be {child_name} co lich tiem." + _VACCINE_SMS_TAIL,
        link="lienthong://children/{child_id}/vaccinations", reminder=True),
    "vaccination_overdue": Template(
        title="Bé {child_name} đã quá lịch tiêm",
        body="Mũi {vaccine_name} của bé {child_name} đã quá ngày {due_date}. Hãy đưa bé đi khám sàng lọc và tiêm "
             "bù sớm.",
        sms="Lienthong: be {child_name} da qua lich tiem ngay {due_date}. Hay dua be di tiem bu som."
            + _VACCINE_SMS_TAIL,
        link="lienthong://children/{child_id}/vaccinations", reminder=True),
}


class UnknownTemplate(KeyError):
    pass


def template(kind: str) -> Template:
    try:
        return TEMPLATES[kind]
    except KeyError:
        raise UnknownTemplate(f"no notification template {kind!r}") from None


def render_push(kind: str, params: dict[str, object]) -> tuple[str, str, str]:
    """(title, body, deep link) of a push."""
    t = template(kind)
    return t.title.format_map(params), t.body.format_map(params), t.link.format_map(params)


def render_sms(kind: str, params: dict[str, object]) -> str:
    t = template(kind)
    if t.sms is None:
        raise UnknownTemplate(f"{kind!r} is never sent by SMS")
    # parameters (a child's name) are accented; the SMS stays GSM-7
    return strip_diacritics(t.sms.format_map(params))


def has_sms(kind: str) -> bool:
    return template(kind).sms is not None


def is_reminder(kind: str) -> bool:
    found = TEMPLATES.get(kind)
    return found is not None and found.reminder


REMINDER_KINDS: tuple[str, ...] = tuple(kind for kind, t in TEMPLATES.items() if t.reminder)
# vaccination kinds that have an SMS: an unopened push of one of them is followed by its SMS
VACCINATION_SMS_KINDS: tuple[str, ...] = tuple(
    kind for kind, t in TEMPLATES.items() if kind.startswith("vaccination_") and t.sms is not None)
