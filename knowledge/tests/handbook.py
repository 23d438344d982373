"""A long, realistic document made deterministically: a business's customer handbook over many pages."""

import random

SENTENCES = [
    "Our clinic is open Monday to Friday from 8:30 a.m. to 6:00 p.m., and on Saturdays from 9:00 a.m. to 1:00 p.m.",
    "Appointments can be booked by phone at (415) 555-0142, through the patient portal, or at the front desk.",
    "Please arrive ten minutes early so that we can confirm your insurance details and update your records.",
    "If you need to cancel, let us know at least 24 hours in advance; late cancellations incur a $45 fee.",
    "New patients should bring a photo ID, their insurance card, and a list of current medications and dosages.",
    "We accept Visa, Mastercard, American Express, HSA/FSA cards, and checks drawn on U.S. banks.",
    "Refunds for prepaid treatment plans are issued within 14 business days to the original payment method.",
    "Parking is free in the garage on Elm Street (entrance B); validate your ticket at reception.",
    "Teeth whitening takes about 90 minutes and results typically last between six months and two years.",
    "Children under 12 must be accompanied by a parent or legal guardian who can consent to treatment.",
    "For emergencies outside office hours, call our on-call line at 1-800-555-0199 and follow the prompts.",
    "X-rays are taken once a year unless your dentist recommends otherwise because of a specific concern.",
    "Our hygienists use ultrasonic scalers, which are quieter and faster than traditional hand instruments.",
    "Invoices are emailed from billing@example-clinic.com; see https://example-clinic.com/billing/faq for details.",
    "Membership plan ID MP-2024-GOLD covers two cleanings, one exam and 15% off restorative work per year.",
    "We are wheelchair accessible, and service animals are welcome in every part of the building.",
    "Prescriptions are sent electronically to the pharmacy you choose; refills require 48 hours' notice.",
    "Sedation options include nitrous oxide and oral sedatives; IV sedation is offered at our downtown site only.",
    "Crowns are usually completed in two visits, although same-day CEREC crowns are available for most molars.",
    "Your data is kept under HIPAA rules, and you may request a copy of your records at any time.",
]
HEADINGS = ["Opening hours", "Booking and cancellations", "Payments and refunds", "Your first visit",
            "Treatments we offer", "Emergencies", "Children and families", "Privacy and records"]


def handbook_pages(pages: int = 30, seed: int = 7) -> list[tuple[int, str]]:
    rng = random.Random(seed)
    out = []
    for number in range(1, pages + 1):
        blocks = []
        if number % 3 == 1:
            blocks.append(rng.choice(HEADINGS))
        for _ in range(rng.randint(2, 5)):
            blocks.append(" ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 12))))
        if number % 7 == 0:  # a paragraph much longer than a chunk
            blocks.append(" ".join(rng.choice(SENTENCES) for _ in range(25)))
        if number % 5 == 0:
            blocks.append("## " + rng.choice(HEADINGS) + "\n" + " ".join(rng.choice(SENTENCES) for _ in range(3)))
        out.append((number, "\n\n".join(blocks)))
    return out
