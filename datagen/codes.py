"""Static code tables the generator draws from: names, diagnoses, procedure
and disease-list codes, med_type sub-codes, other provinces' regions.

Weights are rough shapes of real data (pharmacy and outpatient visits
dominate counts, inpatient stays dominate money), not statistics.
"""
from __future__ import annotations

# -- people ---------------------------------------------------------------
# 马 and 杨 are frequent in Ningxia (回族), hence their weight.
SURNAMES = (
    "王李张刘陈杨马黄赵吴周徐孙朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶"
    "程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾"
    "毛郝龚邵万钱严武戴莫孔汤海纳拜"
)
SURNAME_WEIGHTS = [
    (30 if s in "王李张刘陈" else 40 if s in "马杨" else 8 if s in "海纳拜" else 12) for s in SURNAMES
]
GIVEN_CHARS = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国文辉力鹏宇浩然子涵梓轩欣怡"
    "雨萱佳琪思远晓东玉梅红燕海兵春生福德永忠成林志刚学良淑珍凤兰金花玉兰振华彩霞小龙"
)
# Two-part names (e.g. 维吾尔族) joined with the middle dot; no digits or spaces.
DOT_NAMES = ("阿依古丽·买买提", "艾力·吐尔逊", "古丽娜尔·艾山", "热依拉·阿布都")

# -- regions outside Ningxia (first two digits are provinces in regions.csv) --
# Insured regions of visitors treated in Ningxia (neighbours weigh most).
OTHER_INSU_ADMDVS = (
    ("610102", 8), ("610113", 6), ("610100", 4), ("620102", 8), ("620402", 5),
    ("620100", 3), ("150303", 5), ("150602", 4), ("410105", 2), ("370102", 2),
    ("630102", 2), ("650102", 1), ("320106", 1), ("510107", 1), ("110105", 1),
)
# Regions of institutions outside Ningxia where Ningxia people are treated.
OTHER_FIX_ADMDVS = (
    ("610113", 10), ("610112", 6), ("110105", 5), ("110108", 4), ("620102", 6),
    ("310104", 2), ("440106", 1), ("150602", 2), ("510107", 2), ("330106", 1),
)
# Birth-place prefixes of resident IDs besides the person's own county:
# migrants, and 642221-642226 (固原地区 counties renumbered in 2001).
OTHER_ID_REGIONS = (
    "610102", "610403", "620102", "620421", "150303", "410105", "130102", "370102",
    "642221", "642222", "642223", "642224", "642225", "642226",
)

# -- settlements ------------------------------------------------------------
# category -> (weight of visits, med_type codes incl. province sub-codes)
MED_TYPES = {
    "11": ("11", "1101", "1102"),
    "12": ("12",),
    "13": ("13", "1301"),
    "14": ("14", "1401", "140104", "140201", "1402"),
    "15": ("15", "1501"),
    "16": ("16",),
    "21": ("21", "2101", "2102"),
    "22": ("22",),
    "23": ("23", "2301"),
    "24": ("24",),
    "25": ("25",),
    "26": ("26", "2601"),
    "28": ("28", "2801"),
    "41": ("41", "4101"),
    "51": ("51", "5101"),
    "52": ("52", "5212", "5201"),
}
INPATIENT = frozenset({"21", "22", "23", "24", "25", "26", "28", "52"})

# Visits per person-year by category (local persons).  Chronic (14) visits
# come from persons with a recognised chronic disease (see settlement.py).
VISIT_RATES = {
    "41": 1.25, "11": 1.10, "12": 0.05, "13": 0.09, "15": 0.01, "16": 0.03,
    "21": 0.105, "22": 0.006, "23": 0.004, "24": 0.008, "26": 0.004, "28": 0.012,
}
MATERNITY_RATES = {"51": 0.12, "52": 0.045}  # per woman aged 20-44 per year
CHRONIC_VISITS_PER_YEAR = 7.0

# Median total cost (yuan) and log-normal sigma by category.
COST = {
    "11": (120, 0.7), "12": (12, 0.3), "13": (380, 0.8), "14": (320, 0.6),
    "15": (3200, 0.6), "16": (180, 0.6), "21": (7800, 0.75), "22": (9500, 0.8),
    "23": (26000, 0.7), "24": (11000, 0.75), "25": (15000, 0.8), "26": (6200, 0.4),
    "28": (5600, 0.45), "41": (75, 0.8), "51": (220, 0.6), "52": (5200, 0.45),
}
# Typical length of stay (days) for inpatient categories.
STAY = {"21": 8, "22": 10, "23": 13, "24": 9, "25": 10, "26": 6, "28": 0, "52": 4}

# ICD-10 (医保版) main discharge diagnoses, matching QUALITY_RULES T08.
INPATIENT_DIAG = (
    ("I10.x00x002", 6), ("J18.900", 8), ("K35.800x001", 3), ("I63.900", 7),
    ("I25.103", 5), ("J44.100", 5), ("E11.900", 4), ("I50.900", 3), ("K80.100", 2),
    ("N39.000", 2), ("C34.900", 2), ("C16.900", 1), ("S72.001", 1), ("K29.700", 2),
    ("M51.202", 2), ("I21.900", 1), ("J20.900", 3), ("H25.900", 2), ("N18.500", 1),
    ("I10", 1), ("J18.9", 1), ("E14.900x001", 1),
)
MATERNITY_DIAG = (("O80.000", 6), ("O82.000", 4), ("O34.201", 1))
TRAUMA_DIAG = (("S72.001", 3), ("S06.000x001", 2), ("S82.201", 2), ("S32.001", 1))
# Chronic outpatient: 门慢特病 disease-list code (dise_codg) and its diagnosis.
CHRONIC = (
    ("M03900", "I10.x00x002", 10), ("M01600", "E11.900", 8), ("M04900", "I25.103", 4),
    ("M05300", "J44.900", 3), ("M00500", "C34.900", 1), ("M07800", "N18.500", 1),
    ("M02300", "F20.900", 1), ("M06900", "I69.300", 2),
)
DAY_SURGERY = (("RJ0101", "H25.900", "13.4100"), ("RJ0203", "K80.100", "51.2301"),
               ("RJ0307", "K40.900", "53.0200"), ("RJ0412", "N20.000", "98.5100"))
SINGLE_DISEASE = (("DB0001", "K35.800x001", "47.0100"), ("DB0002", "O82.000", "74.1x00"),
                  ("DB0005", "H25.900", "13.4100"))
PROCEDURES = ("47.0100", "51.2301", "81.5400", "36.0601", "99.2501", "88.7201", "38.9300",
              "13.4100", "74.1x00", "73.5900", "96.0400", "39.9500")
SECONDARY_DIAG = ("I10.x00x002", "E11.900", "E78.500", "K76.000", "I48.900", "D64.900",
                  "J98.414", "N40.x00")

# Disease codes used by defects (T08): present but not matching the pattern.
BAD_DIAG = (None, "", "j18.900", "J18.9000", "I10.x00x0021", "J18.900 ", "肺炎", "J189")

# -- filings ----------------------------------------------------------------
CHANNELS_ONLINE_MATTER = (("ONLINE", 34), ("MOBILE", 42), ("WINDOW", 14), ("KIOSK", 3),
                          ("BANK", 2), ("PHONE", 2), ("SMS", 2), ("MAIL", 1))
CHANNELS_OFFLINE_MATTER = (("WINDOW", 84), ("MAIL", 5), ("BANK", 5), ("KIOSK", 6))
# Relative case volume per matter_code (catalogue order does not matter).
MATTER_VOLUME = {
    "OFFSITE_FILING": 30, "ENROL": 14, "INFO_CHANGE": 10, "CONTRIB_CERT": 14,
    "MANUAL_REIMB": 8, "CHRONIC_DISEASE": 7, "MATERNITY_ALLOWANCE": 3, "TRANSFER": 4,
    "ENROL_STOP": 3, "ACCT_WITHDRAW": 1, "MATERNITY_REIMB": 2, "SPECIAL_DRUG": 2,
    "REFERRAL_FILING": 3, "EMP_ENROL": 2, "EMP_INFO_CHANGE": 2, "EMP_CANCEL": 1,
    "CONTRIB_BASE": 2, "ECARD_ACTIVATE": 4, "ASSIST_REIMB": 1, "DESIGNATED_APPLY": 0.2,
    "DESIGNATED_CHANGE": 0.3, "DESIGNATED_EXIT": 0.1, "INSU_QUERY": 3, "LTC_ASSESS": 0.5,
    "FAMILY_ACCT": 1, "ASSIST_ENROL": 1,
}
