"""Billing fixtures copied from a production export (do not do this)."""

CUSTOMER = {
    "name": "Rosa Delgado",
    "email": "rosa.delgado@outlook.com",
    "phone": "682-321-1573",
    "fax": "883.209.1159",
    "home_tel": "017 1929 4122",
    "card": "4841357058337961528",
    "iban": "ES6352473082145974351448",
    "placeholder_card": "4111 1111 1111 1111",
    "fictional_phone": "202-555-0143",
    "version": "2.4.11",
}
