"""Words and phrases shared by every split: quantities, preferences, verbs, fillers.

Each table is keyed by language: ``"hi"`` (romanized Hindi / code-mixed), ``"en"``
(English) and ``"deva"`` (Devanagari). Weighted tables are ``(phrase, weight)``
pairs; the weights make the common spellings common and the rest occasional, as in
the chat logs the corpus imitates.
"""

from __future__ import annotations

# Mostly digits and one-word numbers; "half dozen"/"ek dozen" are the rare
# multi-word quantities. "do" doubles as the verb in "bhej do": context decides.
QUANTITIES = {
    "hi": (
        ("2", 8), ("1", 4), ("3", 4), ("4", 2), ("5", 1), ("10", 1), ("2-3", 1),
        ("ek", 4), ("do", 4), ("teen", 3), ("char", 1), ("paanch", 1),
        ("half", 2), ("aadha", 1), ("dedh", 1), ("ek dozen", 1),
    ),
    "en": (
        ("2", 6), ("1", 3), ("3", 3), ("4", 1), ("6", 1),
        ("one", 3), ("two", 3), ("three", 2), ("half", 2), ("half dozen", 1),
    ),
    "deva": (("2", 3), ("1", 1), ("3", 1), ("एक", 2), ("दो", 3), ("तीन", 2), ("आधा", 1)),
}

# Preferences are often multi-word ("without onion", "no onion no garlic").
_PREFS_LATIN = (
    ("extra cheese", 4), ("less spicy", 4), ("jain", 3), ("without onion", 3),
    ("kam teekha", 4), ("no sugar", 3), ("extra spicy", 2), ("bina pyaaz", 2),
    ("bina lehsun", 1), ("no onion no garlic", 1), ("less oil", 2), ("kam tel", 2),
    ("extra butter", 2), ("double cheese", 2), ("zyada teekha", 2),
    ("medium spicy", 1), ("sugar free", 1), ("less sugar", 1), ("kam cheeni", 2),
    ("extra chutney", 1), ("no mayo", 1), ("thin crust", 1), ("bina cheeni", 1),
    ("jain style", 1), ("ekdum teekha", 1),
)
PREFERENCES = {
    "hi": _PREFS_LATIN,
    "en": _PREFS_LATIN,
    "deva": (
        ("कम तीखा", 3), ("बिना प्याज़", 2), ("जैन", 2), ("एक्स्ट्रा चीज़", 2),
        ("कम तेल", 1), ("बिना चीनी", 1), ("ज़्यादा तीखा", 1),
    ),
}

# The order verb ending most Hinglish templates, with its spelling variants.
ORDER_VERBS = {
    "hi": (
        ("mangwao", 8), ("chahiye", 6), ("bhejo", 4), ("bhej do", 4),
        ("mangwa do", 3), ("mangwana hai", 3), ("order karo", 3), ("dena", 2),
        ("order kar do", 2), ("de do", 2), ("mangao", 1), ("manga do", 1),
        ("bhejna", 1), ("mangwa dena", 1), ("bhijwa do", 1), ("chaiye", 1),
        ("mangwaao", 1), ("mngwao", 1),
    ),
    "deva": (
        ("मंगवाओ", 4), ("चाहिए", 3), ("भेजो", 2), ("भेज दो", 2), ("मंगवा दो", 1),
        ("ऑर्डर करो", 1), ("दे दो", 1), ("मंगवाना है", 1),
    ),
}

# Politeness and filler words said before or after the request.
HEAD_FILLERS = {
    "hi": ("bhai", "yaar", "please", "arre", "suno", "boss", "bhaiya", "hello", "ji",
           "plz", "bro", "bhai please", "arre yaar", "acha"),
    "en": ("please", "hey", "hi", "ok", "pls", "bro", "hello"),
    "deva": ("भाई", "यार", "प्लीज़", "अरे"),
}
TAIL_FILLERS = {
    "hi": ("please", "jaldi", "bhai", "yaar", "jaldi se", "plz", "abhi",
           "jaldi please", "thank you", "bhai jaldi", "fast"),
    "en": ("please", "asap", "thanks", "quickly", "pls", "right now"),
    "deva": ("जल्दी", "प्लीज़", "भाई", "जल्दी से"),
}

# Spelling variants of non-entity words: chat users type the same word many ways.
SPELLINGS = {
    "aayega": ("ayega", "aaega"),
    "dikhao": ("dikhaao", "dikha do"),
    "karo": ("kro", "kar do"),
    "kya": ("kia",),
    "hai": ("h", "he"),
    "nahi": ("nhi", "nahin"),
    "mera": ("mra",),
    "please": ("pls", "plz"),
    "kahan": ("kaha", "kahaan"),
    "chahiye": ("chaiye", "chahie"),
    "bhejo": ("bhejdo",),
}

# Requests with no entity at all (about a third of the corpus), per language.
NEGATIVES = {
    "hi": (
        "cart dikhao", "mera cart dikhao", "cart mein kya hai", "cart khali karo",
        "order kab aayega", "mera order kab aayega", "order kitni der mein aayega",
        "mera order kahan hai", "order abhi tak nahi aaya", "mera order cancel karo",
        "order cancel kar do", "order cancel karna hai", "payment fail ho gaya",
        "payment fail ho gaya paise kat gaye", "paise kat gaye order nahi hua",
        "menu dikhao", "menu bhejo", "aaj ka menu kya hai", "refund kab milega",
        "refund chahiye", "coupon lagao", "koi offer hai kya", "discount milega kya",
        "delivery charge kitna hai", "bill bhejo", "bill kitna hua", "order status batao",
        "delivery boy ka number do", "delivery boy kahan hai",
        "customer care se baat karao", "last order repeat karo",
        "address change karna hai", "cash on delivery hai kya", "upi se pay karunga",
        "order confirm karo", "khana thanda tha", "khana late aaya", "galat order aaya",
        "item missing hai", "tip add karo", "order track karo", "kitna time lagega",
        "otp nahi aaya", "app chal nahi raha", "help chahiye", "kuch nahi chahiye",
        "rehne do", "theek hai confirm karo", "kya haal hai", "namaste",
    ),
    "en": (
        "show my cart", "where is my order", "cancel my order", "payment failed",
        "show me the menu", "track my order", "when will my order arrive",
        "i want a refund", "apply coupon", "any offers today",
        "what are the delivery charges", "talk to customer care",
        "change my delivery address", "my order is late", "the food was cold",
        "wrong order delivered", "how long will it take", "hello", "ok confirm",
        "no thanks", "clear my cart", "send the bill", "is cash on delivery available",
    ),
    "deva": (
        "कार्ट दिखाओ", "मेरा कार्ट दिखाओ", "मेरा ऑर्डर कब आएगा", "ऑर्डर कब आएगा",
        "मेरा ऑर्डर कहाँ है", "ऑर्डर कैंसल करो", "मेरा ऑर्डर कैंसल कर दो",
        "पेमेंट फेल हो गया", "मेनू दिखाओ", "रिफंड कब मिलेगा", "बिल भेजो",
        "डिलीवरी चार्ज कितना है", "कोई ऑफर है क्या", "खाना ठंडा था",
        "ऑर्डर का स्टेटस बताओ", "धन्यवाद",
    ),
}
