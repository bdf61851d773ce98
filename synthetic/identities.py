"""Fake but realistic identities (names, MRNs, accession numbers) for the synthetic sites.

Everything produced here is PHI-like on purpose: leak tests search the pipeline's outputs
for these strings, so names are full, locale-appropriate names rather than tokens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import numpy as np

_EN_MALE = (
    "James Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel "
    "Matthew Anthony Donald Steven Andrew Joshua Kenneth Kevin Brian George Timothy Ronald "
    "Edward Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Brandon "
    "Benjamin Samuel Gregory Alexander Patrick Raymond Dennis Jerry Tyler Aaron Henry Douglas "
    "Peter Walter Harold Arthur Howard Eugene Russell Vincent Philip Randall"
).split()
_EN_FEMALE = (
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy "
    "Betty Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa "
    "Deborah Stephanie Rebecca Sharon Laura Cynthia Kathleen Amy Angela Shirley Anna Brenda "
    "Pamela Emma Nicole Helen Samantha Katherine Christine Rachel Carolyn Janet Catherine "
    "Maria Heather Diane Julie Olivia Joyce Virginia Victoria Lauren Christina Evelyn Judith"
).split()
_EN_SURNAMES = (
    "Smith Johnson Williams Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Thompson Harris Sanchez "
    "Clark Ramirez Lewis Robinson Walker Allen Wright Torres Nguyen Flores Adams Nelson "
    "Rivera Campbell Mitchell Roberts Gomez Phillips Evans Diaz Edwards Collins Reyes "
    "Stewart Morris Morales Murphy Rogers Gutierrez Ortiz Morgan Peterson Richardson Watson "
    "Chavez Bennett Mendoza Ruiz Hughes Alvarez Castillo Sanders Patel Jimenez Powell "
    "Jenkins Sullivan Coleman Butler Henderson Fisher Vasquez Simmons Romero Patterson "
    "Hamilton Graham Reynolds Griffin Wallace Moreno Hayes Bryant Herrera Gibson Ellis "
    "Medina Aguilar Stevens Murray Castro Marshall Owens Harrison Fernandez "
    "Kennedy Vargas Freeman Tucker Guzman Crawford Olson Simpson Mendez Silva Snyder "
    "Dixon Munoz Holmes Wagner Robertson Salazar Schmidt Garza Daniels Ferguson Nichols "
    "Stephens Soto Weaver Gardner Hawkins Arnold Vazquez Hansen Santos Bradley Elliott "
    "Cunningham Duncan Armstrong Hudson Carroll Riley Andrews Alvarado Delgado Perkins "
    "Hoffman Johnston Matthews Richards Willis Carpenter Lawrence Sandoval Kowalski Novak"
).split()
# (pinyin, hanzi) pairs
_ZH_SURNAMES = tuple(
    tuple(pair.split(":"))
    for pair in (
        "Wang:王 Li:李 Zhang:张 Liu:刘 Chen:陈 Yang:杨 Huang:黄 Zhao:赵 Wu:吴 Zhou:周 Xu:徐 "
        "Sun:孙 Ma:马 Zhu:朱 Hu:胡 Guo:郭 He:何 Gao:高 Lin:林 Luo:罗 Zheng:郑 Liang:梁 Xie:谢 "
        "Song:宋 Tang:唐 Han:韩 Feng:冯 Deng:邓 Cao:曹 Peng:彭 Zeng:曾 Xiao:肖 Tian:田 Dong:董 "
        "Pan:潘 Yuan:袁 Cai:蔡 Jiang:蒋 Yu:余 Du:杜 Ye:叶 Cheng:程 Wei:魏 Su:苏 Ding:丁 Ren:任 "
        "Shen:沈 Yao:姚 Lu:卢 Fu:傅"
    ).split()
)
_ZH_MALE = tuple(
    tuple(pair.split(":"))
    for pair in (
        "Wei:伟 Qiang:强 Lei:磊 Jun:军 Yong:勇 Jie:杰 Tao:涛 Ming:明 Chao:超 Hui:辉 Gang:刚 "
        "Peng:鹏 Hao:浩 Bin:斌 Jian:健 Jianguo:建国 Zhiqiang:志强 Haitao:海涛 Jianhua:建华 "
        "Guoqiang:国强 Xiaodong:晓东 Wenbo:文博 Zhiwei:志伟 Yongjun:永军 Dehua:德华 "
        "Junjie:俊杰 Zihao:子豪 Haoran:浩然 Yuxuan:宇轩 Mingyuan:明远 Shuguang:曙光"
    ).split()
)
_ZH_FEMALE = tuple(
    tuple(pair.split(":"))
    for pair in (
        "Fang:芳 Na:娜 Min:敏 Jing:静 Li:丽 Yan:艳 Juan:娟 Xia:霞 Ping:平 Hong:红 Ling:玲 "
        "Xiuying:秀英 Guilan:桂兰 Yuzhen:玉珍 Lihua:丽华 Xiaomei:晓梅 Ying:颖 Lanying:兰英 "
        "Shuzhen:淑珍 Xiaoyan:晓燕 Yufen:玉芬 Meiling:美玲 Jiayi:佳怡 Yutong:雨桐 "
        "Zixuan:梓萱 Wenjing:文静 Xinyi:欣怡 Huifang:慧芳 Shulan:淑兰"
    ).split()
)


@dataclass(frozen=True)
class Person:
    """A fake person; ``ideographic`` is the Chinese-character form ("" for English names)."""

    family: str
    given: str
    ideographic_family: str = ""
    ideographic_given: str = ""

    @property
    def pn(self) -> str:
        """Alphabetic DICOM PN form, e.g. "ZHANG^WEI" (used in report headers and EHR)."""
        return f"{self.family.upper()}^{self.given.upper()}"

    @property
    def dicom_pn(self) -> str:
        """DICOM PN with the ideographic component when there is one: "ZHANG^WEI=张^伟"."""
        if self.ideographic_family:
            return f"{self.pn}={self.ideographic_family}^{self.ideographic_given}"
        return self.pn

    @property
    def display(self) -> str:
        """Name as written in running text: "John Smith" (given name first)."""
        return f"{self.given} {self.family}"


def name_forms(pn: str) -> set[str]:
    """Every spelling of a DICOM PN value that the generator may write anywhere.

    Parameters
    ----------
    pn : str
        "FAMILY^GIVEN" optionally followed by "=IDEOFAMILY^IDEOGIVEN".

    Returns
    -------
    set[str]
        e.g. {"ZHANG^WEI", "ZHANG WEI", "Zhang Wei", "Wei Zhang", "张^伟", "张伟"}.
    """
    forms: set[str] = set()
    for k, group in enumerate(pn.split("=")):
        parts = [p for p in group.split("^") if p]
        if len(parts) < 2:
            continue
        family, given = parts[0], parts[1]
        forms.update({f"{family}^{given}", f"{family}{given}" if k else f"{family} {given}"})
        if k == 0:
            forms.update({f"{family.title()} {given.title()}", f"{given.title()} {family.title()}"})
    return forms


def draw_person(rng: np.random.Generator, *, locale: str, sex: str) -> Person:
    """Draw one fake person of the given locale ("en" or "zh") and sex ("M" or "F")."""
    if locale == "zh":
        fam = _ZH_SURNAMES[rng.integers(len(_ZH_SURNAMES))]
        zh_pool = _ZH_MALE if sex == "M" else _ZH_FEMALE
        giv = zh_pool[rng.integers(len(zh_pool))]
        return Person(fam[0], giv[0], fam[1], giv[1])
    if locale != "en":
        raise ValueError(f"locale must be 'en' or 'zh', got {locale!r}")
    pool = _EN_MALE if sex == "M" else _EN_FEMALE
    return Person(_EN_SURNAMES[rng.integers(len(_EN_SURNAMES))], pool[rng.integers(len(pool))])


def draw_unique_people(
    rng: np.random.Generator, sexes: list[str], *, locale: str, taken: set[str]
) -> list[Person]:
    """Draw one person per entry of ``sexes`` whose PN is not in ``taken`` (updated in place)."""
    people = []
    for sex in sexes:
        for _ in range(10_000):
            person = draw_person(rng, locale=locale, sex=sex)
            if person.pn not in taken:
                break
        else:  # pragma: no cover - pools hold thousands of combinations
            raise RuntimeError("name pool exhausted; lower patients_per_site")
        taken.add(person.pn)
        people.append(person)
    return people


def format_id(pattern: str, n: int, when: date) -> str:
    """Fill an MRN or accession pattern of a :class:`~.profiles.SiteProfile`."""
    return pattern.format(
        n=n, yy=f"{when.year % 100:02d}", yyyy=f"{when.year:04d}", date=when.strftime("%Y%m%d")
    )


def unique_numbers(rng: np.random.Generator, count: int, *, low: int, high: int) -> list[int]:
    """``count`` distinct integers from [low, high), in random order."""
    if high - low < count:
        raise ValueError(f"cannot draw {count} distinct numbers from [{low}, {high})")
    return [int(v) + low for v in rng.choice(high - low, size=count, replace=False)]


_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://fedmpt.invalid/synthetic-consortium")


def derived_uid(*parts: str) -> str:
    """Deterministic DICOM UID "2.25.<int>" from a name-based (version 5) UUID of ``parts``.

    PS3.5 B.2 allows UUID-derived UIDs under the 2.25 root. Note that pydicom's
    ``generate_uid(prefix=None, entropy_srcs=...)`` ignores ``entropy_srcs`` and returns a
    random uuid4-based UID, so it cannot be used for reproducible output.
    """
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, '|'.join(parts)).int}"
