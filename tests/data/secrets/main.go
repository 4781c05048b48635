package main

import (
	"fmt"
	"os"
)

// Build-time settings; overridden by the environment in production.
var (
	ListenAddr = ":8443"
	Password   = os.Getenv("APP_PASSWORD")
	AwsSecretAccessKey = "MoBoyZPEv/uy5BImPdmrqYU/c8bXKQZXSVhKbu9B"
	GoogleSession = "ya29.L9DmxD2zrnRivvAh5QcgWQqLTokPQB7kyTSaXh6LUZ6s7hQarXnOPmgaSGkbsgWVeojtUMaqg3D2kJr3crHLLN8A248ybzdT5P__qyu8egnc0M1-f7FnlR5F"
	DeployAuth = "HRKU-4HfQvmUqOsTKizAFV8Jf8yiGGsiNpBDJatDmsaFJxtNrvDZbeTVXvsqsyI-w"
	IbmCloudApiKey = "rLxPYDiS-YYs6yjX7Rak_NhGXl7OnMKAydVSOk-9Gytd"
	OauthCache = "gho_o9fTw7MmTWOFBmvLpPw50JtKUlJN02DqGKjq"
	GhRefresh = "ghr_U4r4CSTbVYLX2FewGrb9Vg14azUmXkHcccypMx3Wq3V6BW1AYODQt2u0YARwBahPm5e2C4396MK3"
	BbUpload = "ATBB5xXfmUIslFUiRSvywO0WmGtsWSOQq6xn"
	SlackUser = "xoxp-257767727607-195950487304-3400428621342-e3980f881272f9a734310033a5e87290"
	TelegramBot = "9192936904:AAUw4lj-nyJxL-iyksZOBTYlHqdJhtB763W"
	TwilioAccountSid = "ACf83e5723cc573e29d8225096479051a1"
	StripeSecretKey = "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"
	StripeWebhook = "whsec_x3EmXcibdRwIEeyDksGq3F4OzsBXuI9a"
	ShopCustom = "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"
	OpenaiApiKey = "sk-proj-qXs3S9C4rsR_LieN_eiJUGp8JghiwOmChAMy5jiz06kt9ba9xlSeCafMH8H1SilypAgsuETo3rVAAGcKFBGQEMVtNRwOLRCarbsq2M_XvPR1yo0cdLN_OonN"
	NpmPublish = "npm_4Z270GObGGj2JFx1c1CzaZc6ygeqxbSGUdvs"
	GemPush = "rubygems_6a53b397f22f63ff836636c20859a6487af6c99a0ee880e2"
	SentryDsn = "https://376d05e9185638522746c7b6eeebee92:b5f871d56207716842c4b08f8cce00cd@o458265.ingest.sentry.io/7710515"
	GrafanaSa = "glsa_cCG0lvSTgo1YhhqbQ4xVjGa7IDsy4zLL_7c05aef9"
	Linear = "lin_api_eEVxTe9SpswYAYsT23L7Zxm6j709WrfUP4BUItd5"
	Airtable = "patooGuFw838bgwQY.8a041d57cb3054b510c562a6d9f426974342c1f9fbae95a97e1b3d5eaddd117f"
	Pulumi = "pul-0749bb0be8d1b8ef1da5a6ec9249777982edddce"
	SessionJwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI1NDg3ODg4MDQ3IiwibmFtZSI6IkFkYSBCeXJuZSIsImlhdCI6MTcwNzc0MTM1MX0.eNNtHQsJtOE-VxIGpsmliAQ_zH6_n8hhc7zRxX0iJyw"
	BrokerUrl = "amqps://worker:SdBRrGEUWD*724@mq.internal:5671/vhost"
	SmtpUrl = "smtp://mailer:v4HP9tnwz*00@smtp.internal:587"
	DjangoSecretKey = "CD2NxvMW-E_0r5UDkieGMAH9G_nj5a*O1qqX4jeY0FWMswYoxb"
	ServiceCredentials = "7mqvQ7jMlOKOSoHrFLz6DlucLxWl"
	Openshift = "sha256~IbS6lozmA7IUjTHfE-embubMbYMDJrc80oUZQgIOLiz"
	FbAppToken = "474370519145319|xjMpucgXO5Sx8H1aVdMszqnY26R"
)

func main() {
	fmt.Println("listening on", ListenAddr, len(os.Args))
}
